"""``python -m brainsegfounder.data.synthetic ...``: see :mod:`brainsegfounder.data.synthetic.cli`."""

from brainsegfounder.data.synthetic.cli import main

if __name__ == "__main__":
    main()
