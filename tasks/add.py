"""``python -m tasks.add [options]`` trains task ``add``: the same as
``cognet train --task add [options]`` (see ``--help``)."""

if __name__ == "__main__":
    from tasks.script import run

    run("add")
