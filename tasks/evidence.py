"""``python -m tasks.evidence [options]`` trains task ``evidence``: the same as
``cognet train --task evidence [options]`` (see ``--help``)."""

if __name__ == "__main__":
    from cognet.cli.task_script import run

    run("evidence")
