"""``python -m tasks.subtract [options]`` trains task ``subtract``: the same as
``cognet train --task subtract [options]`` (see ``--help``)."""

if __name__ == "__main__":
    from cognet.cli.task_script import run

    run("subtract")
