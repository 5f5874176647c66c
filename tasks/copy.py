"""``python -m tasks.copy [options]`` trains task ``copy``: the same as
``cognet train --task copy [options]`` (see ``--help``)."""

if __name__ == "__main__":
    from tasks.script import run

    run("copy")
