"""``python -m tasks.multiply [options]`` trains task ``multiply``: the same as
``cognet train --task multiply [options]`` (see ``--help``)."""

if __name__ == "__main__":
    from cognet.cli.task_script import run

    run("multiply")
