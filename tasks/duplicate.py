"""``python -m tasks.duplicate [options]`` trains task ``duplicate``: the same as
``cognet train --task duplicate [options]`` (see ``--help``)."""

if __name__ == "__main__":
    from cognet.cli.task_script import run

    run("duplicate")
