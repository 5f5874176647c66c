"""``python -m tasks.reverse [options]`` trains task ``reverse``: the same as
``cognet train --task reverse [options]`` (see ``--help``)."""

if __name__ == "__main__":
    from cognet.cli.task_script import run

    run("reverse")
