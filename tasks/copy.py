"""``python -m tasks.copy [options]`` trains task ``copy``: the same as
``cognet train --task copy [options]`` (see ``--help``)."""

if __name__ == "__main__":
    from cognet.cli.task_script import run

    run("copy")
