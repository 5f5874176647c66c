"""``python -m tasks.add [options]`` trains task ``add``: the same as
``cognet train --task add [options]`` (see ``--help``)."""

if __name__ == "__main__":
    from cognet.cli.task_script import run

    run("add")
