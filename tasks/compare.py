"""``python -m tasks.compare [options]`` trains task ``compare``: the same as
``cognet train --task compare [options]`` (see ``--help``)."""

if __name__ == "__main__":
    from cognet.cli.task_script import run

    run("compare")
