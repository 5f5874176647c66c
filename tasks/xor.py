"""``python -m tasks.xor [options]`` trains task ``xor``: the same as
``cognet train --task xor [options]`` (see ``--help``)."""

if __name__ == "__main__":
    from cognet.cli.task_script import run

    run("xor")
