"""Assembly: a resolved spec → plain PyTorch objects and a Trainer; the only place that turns the
engine's errors into `file:line:col` problems.

    tasks.py    the task, loss and metrics a spec resolves to (a new spec; the given one is kept)
    plugins.py  accelerator, devices, nodes, strategy, precision → the engine's plugins
    build.py    the build sequence `dtrain run` and `dtrain test` share
    locate.py   engine errors → located spec problems
    record.py   the resolved spec as spec.yaml and as checkpoints embed it
"""
