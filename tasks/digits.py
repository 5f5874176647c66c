"""``python -m tasks.digits [options]`` trains task ``digits``: the same as
``cognet train --task digits [options]`` (see ``--help``)."""

if __name__ == "__main__":
    from cognet.cli.task_script import run

    run("digits")
