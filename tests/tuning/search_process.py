"""One process of a tiny MNIST search, for the resume and chief/worker tests.

    python search_process.py DIRECTORY DATA_DIR [--max_trials=3] [--kill_in_trial=N]
        [--log=FILE] [--barrier=N]

Appends "<KERASTUNER_TUNER_ID or tuner0> <trial_id>" to --log as each trial begins here.
--kill_in_trial=N: SIGKILL this process during the second training step of its N-th trial
(a real interruption: nothing is flushed or saved).
--barrier=N: hold this process's first trial until N tuners have logged one, so that every
worker of a distributed test is known to take part.
"""

import argparse
import os
import signal
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import tfvq  # noqa: E402

TINY_SPACE = {"hidden_channels": [8, 16], "residual_channels": 4, "num_residual_layers": 1,
              "num_embeddings": [8, 16, 32], "embedding_dim": [4, 8], "downsample": "stride",
              "downsample_stages": 2}
_started = []


class KillInTrial(keras.callbacks.Callback):
    def __init__(self, trial_number):
        super().__init__()
        self.trial_number = trial_number

    def on_train_batch_end(self, batch, logs=None):
        if len(_started) == self.trial_number and batch == 1:
            os.kill(os.getpid(), signal.SIGKILL)


def _log_trials(tuner, log, barrier):
    begin = tuner.on_trial_begin
    tuner_id = os.environ.get("KERASTUNER_TUNER_ID", "tuner0")

    def on_trial_begin(trial):
        _started.append(trial.trial_id)
        if log:
            with open(log, "a") as f:
                f.write(f"{tuner_id} {trial.trial_id}\n")
            if barrier and len(_started) == 1:
                deadline = time.time() + 120
                while time.time() < deadline:
                    with open(log) as f:
                        if len({line.split()[0] for line in f if line.strip()}) >= barrier:
                            break
                    time.sleep(0.2)
        begin(trial)

    tuner.on_trial_begin = on_trial_begin


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("directory")
    parser.add_argument("data_dir")
    parser.add_argument("--max_trials", type=int, default=3)
    parser.add_argument("--kill_in_trial", type=int, default=0)
    parser.add_argument("--log", default="")
    parser.add_argument("--barrier", type=int, default=0)
    args = parser.parse_args()

    train = tfvq.data.load("mnist", "train[:256]", 32, data_dir=args.data_dir, seed=0).repeat()
    test = tfvq.data.load("mnist", "test[:64]", 64, data_dir=args.data_dir)
    hypermodel = tfvq.tuning.VQVAEHyperModel((28, 28, 1), space=TINY_SPACE, jit_compile=False)
    tuner = tfvq.tuning.make_tuner(hypermodel, "random", max_trials=args.max_trials, max_epochs=1,
                                   directory=args.directory, project_name="search", seed=3)
    _log_trials(tuner, args.log, args.barrier)
    callbacks = [KillInTrial(args.kill_in_trial)] if args.kill_in_trial else []
    tuner.search(train, validation_data=test, epochs=1, steps_per_epoch=3, callbacks=callbacks,
                 verbose=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
