"""``python -m tasks.store_recall [options]`` trains task ``store-recall``: the same as
``cognet train --task store-recall [options]`` (see ``--help``)."""

if __name__ == "__main__":
    from cognet.cli.task_script import run

    run("store-recall")
