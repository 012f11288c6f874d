"""choose_jit_compile: both variants timed on throwaway models, the choice cached per machine."""

import json

import keras
import numpy as np
import pytest

from tfvq.training import jit


def _factory(built):
    def make_model(jit_compile):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        model.compile(optimizer="sgd", loss="mse", jit_compile=jit_compile)
        built.append((jit_compile, model))
        return model
    return make_model


BATCH = (np.ones((8, 4), "float32"), np.zeros((8, 3), "float32"))


def test_times_both_variants_and_picks_the_faster(tmp_path, monkeypatch):
    # A clock that only the steps move, by a set cost per variant: the real steps run, but the
    # times read are exact whatever else loads the machine (a sleep-based version failed when
    # a busy machine delayed a step by more than the 20 ms gap).
    import time
    import types

    built = []
    cost = {True: 0.02, False: 0.0}  # XLA made 20 ms slower per step: the choice is False
    now = [0.0]
    real_step = jit._step

    def step(model, batch):
        real_step(model, batch)
        now[0] += cost[model.jit_compile]

    monkeypatch.setattr(jit, "_step", step)
    monkeypatch.setattr(jit, "time", types.SimpleNamespace(perf_counter=lambda: now[0],
                                                           strftime=time.strftime))
    path = tmp_path / "cache.json"
    assert jit.choose_jit_compile(_factory(built), BATCH, steps=3, cache_path=str(path)) is False
    assert sorted(j for j, _ in built) == [False, True]
    for _, model in built:  # warm-up and timed steps on each throwaway model
        assert int(model.optimizer.iterations.numpy()) == 2 + 3
    (entry,) = json.loads(path.read_text()).values()
    assert entry["jit_compile"] is False
    assert entry["ms_per_step"] == pytest.approx({"true": 20.0, "false": 0.0})
    cost.update({True: 0.0, False: 0.02})
    assert jit.choose_jit_compile(_factory([]), BATCH, steps=3, cache_path="") is True


def test_a_cached_choice_skips_the_timing(tmp_path, monkeypatch):
    path = tmp_path / "cache.json"
    first = jit.choose_jit_compile(_factory([]), BATCH, steps=1, cache_path=str(path))
    cache = json.loads(path.read_text())
    (key,) = cache
    cache[key]["jit_compile"] = not first  # as if another run had measured the other way
    path.write_text(json.dumps(cache))
    monkeypatch.setattr(jit, "_step", lambda *a: pytest.fail("timed although cached"))
    assert jit.choose_jit_compile(_factory([]), BATCH, cache_path=str(path)) is (not first)
    # Another batch shape is another entry: it is timed again.
    monkeypatch.undo()
    other = (np.ones((16, 4), "float32"), np.zeros((16, 3), "float32"))
    jit.choose_jit_compile(_factory([]), other, steps=1, cache_path=str(path))
    assert len(json.loads(path.read_text())) == 2


def test_a_damaged_cache_is_measured_again(tmp_path):
    path = tmp_path / "cache.json"
    path.write_text("{not json")
    assert jit.choose_jit_compile(_factory([]), BATCH, steps=1, cache_path=str(path)) in (True, False)
    assert len(json.loads(path.read_text())) == 1


def test_default_cache_path_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TFVQ_CACHE_DIR", str(tmp_path))
    assert jit.default_cache_path() == str(tmp_path / "jit_compile.json")


@pytest.mark.parametrize("kwargs", [{"steps": 0}, {"warmup": 0}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="steps >= 1 and warmup >= 1"):
        jit.choose_jit_compile(_factory([]), BATCH, cache_path="", **kwargs)
