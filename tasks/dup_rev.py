"""``python -m tasks.dup_rev [options]`` trains task ``dup-rev``: the same as
``cognet train --task dup-rev [options]`` (see ``--help``)."""

if __name__ == "__main__":
    from cognet.cli.task_script import run

    run("dup-rev")
