"""``python -m tasks.count [options]`` trains task ``count``: the same as
``cognet train --task count [options]`` (see ``--help``)."""

if __name__ == "__main__":
    from cognet.cli.task_script import run

    run("count")
