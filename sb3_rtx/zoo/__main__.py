"""``python -m sb3_rtx.zoo train|enjoy|record_video|...``: the ``sb3-rtx`` command."""

from sb3_rtx.zoo.cli import main

if __name__ == "__main__":
    main()
