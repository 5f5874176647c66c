"""``python -m tasks.parity [options]`` trains task ``parity``: the same as
``cognet train --task parity [options]`` (see ``--help``)."""

if __name__ == "__main__":
    from cognet.cli.task_script import run

    run("parity")
