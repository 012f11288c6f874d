"""What the examples share: the flags they have in common, and one way to resume a training.

`examples/cifar10.py`, `generate.py`, `colorize.py` and `tune.py` each call `define` from their
own `define_flags()` for the flags they share (--dataset, --data_dir, --batch_size, ...), so a
flag means the same in every script; its default is the script's `Config` field of the same
name. `fit_resumable` is how cifar10.py, generate.py and colorize.py train: run one again with
the same output folder and it resumes from the last finished epoch, or, when its training is
done, loads the model instead of training it again.

The examples import this module as `import common_flags`: Python puts a script's own folder
first on its path, so no path edit is needed.
"""

import contextlib
import csv
import dataclasses
import os
import time

from absl import flags, logging

FLAGS = flags.FLAGS

STRATEGIES = ["auto", "cpu", "mirrored", "multiworker"]

# name: (flags.DEFINE_<kind>, help). A script may say more in its own help (`define(helps=)`).
SHARED = {
    "dataset": ("string", "tfds image dataset name."),
    "data_dir": ("string", "TFDS data dir (default: $TFDS_DATA_DIR)."),
    "output_dir": ("string", "Where metrics, pictures and models go; run again with the same "
                             "folder to resume."),
    "epochs": ("integer", "Training epochs."),
    "steps_per_epoch": ("integer", "Training steps per epoch (0: one pass over the data)."),
    "batch_size": ("integer", "Global batch size (split over replicas)."),
    "learning_rate": ("float", "Adam learning rate."),
    "strategy": ("enum", "tf.distribute strategy."),
    "seed": ("integer", "Random seed."),
    "train_examples": ("integer", "Use only the first N training images (0: all)."),
    "eval_examples": ("integer", "Test images to evaluate on (0: the whole test split)."),
    "hidden_channels": ("integer", "Width of the conv stacks."),
    "residual_channels": ("integer", "Inner width of the residual blocks."),
    "num_residual_layers": ("integer", "Residual blocks per stack."),
    "downsample_stages": ("integer", "Stride-2 stages of the encoder (mirrored back up)."),
    "num_embeddings": ("integer", "VQ-VAE codebook size K."),
    "embedding_dim": ("integer", "VQ-VAE code size D."),
}


def define(config, names, *, output_dir=None, helps=None, choices=None, flag_values=FLAGS):
    """Defines the shared flags `names`, each defaulting to `config`'s field of that name.

    Args:
        config: the script's `Config` dataclass (the class: its fields' defaults are read).
        names: keys of `SHARED`.
        output_dir: the default of --output_dir (not a `Config` field: `train_and_evaluate`
            takes the folder as an argument of its own).
        helps: {name: help} where the script says more than the shared help.
        choices: {name: values} of an enum flag (--strategy: `STRATEGIES` unless given); a
            string flag given values becomes an enum.
        flag_values: the `absl.flags.FlagValues` to define them in.
    """
    helps, choices = helps or {}, choices or {}
    for name in names:
        if name not in SHARED:
            raise ValueError(f"define: {name!r} is not a shared flag; expected one of "
                             f"{sorted(SHARED)}")
        kind, text = SHARED[name]
        default = output_dir if name == "output_dir" else getattr(config, name)
        text = helps.get(name, text)
        if kind == "enum" or name in choices:
            flags.DEFINE_enum(name, default, choices.get(name, STRATEGIES), text,
                              flag_values=flag_values)
        else:
            getattr(flags, f"DEFINE_{kind}")(name, default, text, flag_values=flag_values)


def config_from_flags(config, flag_values=FLAGS):
    """An instance of the `Config` dataclass `config`, every field read from its flag."""
    return config(**{field.name: flag_values[field.name].value
                     for field in dataclasses.fields(config)})


def history_csv(workdir, stage=None):
    """The CSV log of a training's whole history in `workdir`: each resumption appends to it."""
    return os.path.join(workdir, f"history_{stage}.csv" if stage else "history.csv")


def read_history(path):
    """{metric: per-epoch values} from a `history_csv` log (it survives resumption, `History`
    does not). CSVLogger's "NA" (a validation metric of a run without validation) is NaN, and a
    metric that is "NA" throughout is left out."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    history = {}
    for key in rows[0] if rows else ():
        values = [row[key] for row in rows]
        if key != "epoch" and any(value != "NA" for value in values):
            history[key] = [float("nan") if value == "NA" else float(value) for value in values]
    return history


def _load_on_chief_and_copy(strategy, model, saved):
    """The chief's saved weights and optimizer state (`saved`, None on the other workers) in
    `model` on every worker.

    The chief loads its model outside the strategy's scope, where creating its variables is
    no collective that the other workers would have to join, and assigns their values to
    `model`'s; then they are copied from the chief to every worker. The workers first compare
    how many variables and values they hold, so that a model built differently stops here with
    a message rather than in a failed collective.
    """
    import keras
    import numpy as np

    import tfvq

    if not model.optimizer.built:
        with strategy.scope():  # its variables are the chief's broadcasts too
            model.optimizer.build(model.trainable_variables)
    variables = list(model.variables) + list(model.optimizer.variables)
    mismatch = None
    if saved is not None:
        loaded = keras.models.load_model(saved)
        values = list(loaded.variables) + list(loaded.optimizer.variables)
        if [tuple(v.shape) for v in values] != [tuple(v.shape) for v in variables]:
            mismatch = f"{saved} holds another model than the one this command builds"
        else:
            for variable, value in zip(variables, values):
                variable.assign(value.numpy())
    # A chief that cannot load still joins the comparison (with sizes no model has), so that
    # every worker stops with a message.
    mine = [len(variables), int(sum(np.prod(v.shape) for v in variables))]
    chief = tfvq.training.chief_values(strategy, [-1, -1] if mismatch else mine)
    if mismatch:
        raise ValueError(mismatch)
    if chief != mine:
        raise ValueError(
            f"This worker's model has {mine[0]} variables holding {mine[1]} values with its "
            f"optimizer, the chief's {chief[0]} holding {chief[1]}: the workers must run the "
            f"same command")
    tfvq.training.copy_from_chief(strategy, variables)


def fit_resumable(build, train, epochs, workdir, *, stage=None, steps_per_epoch=0,
                  callbacks=None, strategy=None, **fit_kwargs):
    """Trains `build()`'s model to `epochs` epochs in `workdir`, picking up an earlier run there.

    One training's files in `workdir` are its model (`model.keras`, or `<stage>.keras`), its
    `history_csv` and, while it trains, a `keras.callbacks.BackupAndRestore` folder (`backup/`,
    `backup_<stage>/`; one per worker, see `tfvq.training.backup_dir_for`). So when it starts:

    - with a backup (the last run was interrupted): it builds the model, and BackupAndRestore
      restores weights, optimizer and epoch: training goes on from the last finished epoch;
    - with a saved model and a history but no backup (the last run finished): it loads the
      model (with its optimizer state) and trains only the epochs still missing, if any;
    - otherwise: it builds the model and trains from epoch 0 (a history left over is dropped).

    Under MultiWorkerMirroredStrategy the chief's files decide for every worker (only the chief
    writes the model and the history), and a worker that finds no saved model in its own
    `workdir` builds the model and takes the chief's weights and optimizer state
    (`tfvq.training.copy_from_chief`), so that all of them skip, or go on training, together.

    Args:
        build: makes the compiled model; called in `strategy`'s scope.
        train: the training dataset; repeated when `steps_per_epoch` is given.
        epochs: epochs of the whole training, those of earlier runs included.
        workdir: the output folder.
        stage: names the files of one of several trainings in one `workdir` (e.g. "prior").
        steps_per_epoch: training steps per epoch (0: one pass over `train`).
        callbacks: None for `BackupAndRestore`, `ModelCheckpoint` to the model file (chief
            only) and `TerminateOnNaN`; or a function `model -> callbacks` giving a run's own,
            which must then hold one `BackupAndRestore` in this training's backup folder and
            save the model each epoch, as `tfvq.training.default_callbacks(workdir, model,
            images, worker_index=tfvq.training.worker_index(strategy))` does.
        strategy: the `tf.distribute` strategy whose scope builds or loads the model. In a
            multi-worker run only its chief (`tfvq.training.worker_index(strategy) == 0`)
            writes the model and the history.
        **fit_kwargs: passed to `model.fit` (validation_data, verbose).

    Returns:
        (model, history, seconds): the trained model, this run's `History.history` ({} when no
        epoch was left to train) and the seconds its `fit` took.
    """
    import keras
    import tensorflow as tf

    import tfvq

    worker_index = tfvq.training.worker_index(strategy)
    chief = worker_index == 0
    suffix = f"_{stage}" if stage else ""
    saved = os.path.join(workdir, f"{stage or 'model'}.keras")
    history_path = history_csv(workdir, stage)
    backup = tfvq.training.backup_dir_for(workdir, worker_index) + suffix
    interrupted = os.path.isdir(backup)
    finished = not interrupted and os.path.exists(saved) and os.path.exists(history_path)
    if chief and not (interrupted or finished) and os.path.exists(history_path):
        os.remove(history_path)  # the history of a training whose model is gone
    initial_epoch = len(read_history(history_path).get("loss", [])) if finished else 0
    # Only the chief writes the model and the history: a worker with its own output folder
    # finds neither there. The chief's files decide for every worker, and a worker that cannot
    # load the chief's model builds it and takes its weights and optimizer state from the
    # chief; otherwise a rerun of a finished run would have the chief evaluate (or train on from
    # its saved epoch) while the others trained from epoch 0, and their collectives fail.
    multiworker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    if multiworker:
        finished, initial_epoch = tfvq.training.chief_values(strategy, [finished, initial_epoch])
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        if finished and not multiworker:
            model = keras.models.load_model(saved)
        else:
            # Under MultiWorkerMirroredStrategy each variable created is a collective (the
            # chief broadcasts its initial value), so every worker builds the same model the
            # same way, and the chief loads its saved weights into it afterwards.
            model = build()
    if multiworker and finished:
        _load_on_chief_and_copy(strategy, model, saved if chief else None)
    model.summary(print_fn=logging.info)
    if initial_epoch >= epochs:
        logging.info("%s has trained %d of %d epochs: nothing left to train", saved,
                     initial_epoch, epochs)
        return model, {}, 0.0
    if initial_epoch:
        logging.info("Continuing %s from epoch %d", saved, initial_epoch)

    if callbacks is None:
        run_callbacks = [keras.callbacks.BackupAndRestore(backup), keras.callbacks.TerminateOnNaN()]
        if chief:
            run_callbacks.append(keras.callbacks.ModelCheckpoint(saved))
    else:
        run_callbacks = list(callbacks(model))
        backups = [c.backup_dir for c in run_callbacks
                   if isinstance(c, keras.callbacks.BackupAndRestore)]
        if [os.path.abspath(b) for b in backups] != [os.path.abspath(backup)]:
            raise ValueError(f"fit_resumable resumes from {backup!r}: `callbacks` must hold one "
                             f"BackupAndRestore there; got backup folders {backups}")
    if chief:
        run_callbacks.append(keras.callbacks.CSVLogger(history_path, append=True))
    if steps_per_epoch:
        train = train.repeat()
    start = time.time()
    history = model.fit(train, epochs=epochs, initial_epoch=initial_epoch,
                        steps_per_epoch=steps_per_epoch or None, callbacks=run_callbacks,
                        **fit_kwargs)
    return model, history.history, time.time() - start
