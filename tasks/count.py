"""``python -m tasks.count [options]`` trains task ``count``: the same as
``cognet train --task count [options]`` (see ``--help``)."""

if __name__ == "__main__":
    from tasks.script import run

    run("count")
