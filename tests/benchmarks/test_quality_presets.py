"""benchmarks/quality.py's matched-budget presets: each builds a VQ-VAE of about 10 bits per position."""

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "quality.py"


def _load_quality():
    spec = importlib.util.spec_from_file_location("benchmarks_quality", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines its absl flags once, for this test module
    return module


quality = _load_quality()

# preset: (quantizer class, codebook_size, num_codebooks, embedding_dim), from the table.
EXPECTED = {
    "ema1024": ("VectorQuantizerEMA", 1024, 1, 64),
    "cosine1024": ("VectorQuantizer", 1024, 1, 64),
    "rotation1024": ("VectorQuantizer", 1024, 1, 64),
    "ema_rotation1024": ("VectorQuantizerEMA", 1024, 1, 64),
    "ema_factorized1024": ("VectorQuantizerEMA", 1024, 1, 64),
    "fsq": ("FiniteScalarQuantizer", 8 * 5 * 5 * 5, 1, 4),
    "lfq": ("LookupFreeQuantizer", 2**10, 1, 10),
    "rvq2x32": ("ResidualVectorQuantizer", 32, 2, 64),
}


def _tiny(preset, **kwargs):
    config = quality.quantizer_config(preset, **kwargs)
    return config, quality.build_vqvae(*config, hidden_channels=8, residual_channels=4)


def test_presets_are_the_expected_ones():
    assert set(quality.PRESETS) == set(EXPECTED)


@pytest.mark.parametrize("preset", sorted(EXPECTED))
def test_preset_builds_its_quantizer_at_about_ten_bits(preset):
    _, model = _tiny(preset, kmeans_init=True, dead_code_threshold=2.0)
    q = model.quantizer
    name, size, levels, dim = EXPECTED[preset]
    assert type(q).__name__ == name
    assert (q.codebook_size, q.num_codebooks, q.embedding_dim) == (size, levels, dim)
    assert q.bits_per_position == pytest.approx(levels * math.log2(size))
    assert q.bits_per_position == pytest.approx(10, abs=0.05)
    codes = np.asarray(model.encode_to_indices(np.zeros((2, 32, 32, 3), np.float32)))
    assert codes.shape == (2, 8, 8) + ((levels,) if levels > 1 else ())


def test_preset_options():
    assert _tiny("cosine1024")[1].quantizer.distance == "cosine"
    assert _tiny("rotation1024")[1].quantizer.gradient == "rotation"
    rvq = _tiny("rvq2x32")[1].quantizer
    assert rvq.quantizer == "ema" and len(rvq.stages) == 2


def test_restart_options_reach_only_quantizers_with_a_codebook():
    for preset in ("ema1024", "cosine1024", "rotation1024"):
        q = _tiny(preset, kmeans_init=True, dead_code_threshold=2.0)[1].quantizer
        assert q.kmeans_init and q.dead_code_threshold == 2.0
    for stage in _tiny("rvq2x32", kmeans_init=True, dead_code_threshold=2.0)[1].quantizer.stages:
        assert stage.kmeans_init and stage.dead_code_threshold == 2.0
    for preset in ("fsq", "lfq"):
        (_, _, _, options), _ = _tiny(preset, kmeans_init=True, dead_code_threshold=2.0)
        assert not {"kmeans_init", "dead_code_threshold", "seed"} & set(options)


def test_options_extend_a_preset_and_plain_flags_keep_the_notebook_model():
    (_, _, _, options), _ = _tiny("cosine1024", options={"codebook_dim": 8})
    assert options["distance"] == "cosine" and options["codebook_dim"] == 8
    config = quality.quantizer_config(None, "ema", 512, 64, {}, True, 2.0, 0)
    assert config == ("ema", 512, 64, dict(kmeans_init=True, dead_code_threshold=2.0, seed=0))
    with pytest.raises(ValueError, match="preset"):
        quality.quantizer_config("vq2048")


def test_level_counts_pool_each_level_of_multi_level_codes():
    codes = np.array([[[[0, 3], [1, 3]], [[1, 2], [1, 3]]]])  # (B=1, h=2, w=2, Q=2)
    counts = quality.level_counts(codes, codebook_size=4, num_codebooks=2)
    np.testing.assert_array_equal(counts, [[1, 3, 0, 0], [0, 0, 1, 3]])
    np.testing.assert_array_equal(quality.level_counts(codes[..., 0], 4), [[1, 3, 0, 0]])


def test_code_statistics_match_numpy_on_two_level_codes():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 8, size=(64, 2, 2, 2))

    class Run:  # the interface `code_statistics` reads
        num_embeddings, num_codebooks = 8, 2

        def encode_to_indices(self, images):
            return codes[: len(images)]

    per32, pooled, usage = quality.code_statistics(Run(), np.zeros((64, 1)), batch=32)

    def perplexity(c):
        p = np.bincount(c.ravel(), minlength=8) / c.size
        p = p[p > 0]
        return np.exp(-np.sum(p * np.log(p)))

    levels = [codes[..., q] for q in range(2)]
    assert pooled == pytest.approx(np.mean([perplexity(c) for c in levels]), rel=1e-5)
    assert usage == pytest.approx(np.mean([len(np.unique(c)) / 8 for c in levels]))
    expected32 = np.mean([np.mean([perplexity(c[i:i + 32]) for c in levels]) for i in (0, 32)])
    assert per32 == pytest.approx(expected32, rel=1e-5)


def test_markdown_table_reads_the_json_rows(tmp_path):
    record = dict(
        flags=dict(preset="rvq2x32", seed=0),
        quantizer=dict(quantizer="rvq", bits_per_position=10.0,
                       quantizer_options=dict(num_quantizers=2, quantizer="ema",
                                              kmeans_init=True, dead_code_threshold=2.0, seed=0)),
        rows=[dict(steps=1000, seconds=300.0, steps_per_s=3.33, val_nmse=0.1234, val_psnr=24.5,
                   val_usage=0.9, val_perplexity_pooled=28.3, bits_per_position=10.0)],
    )
    path = tmp_path / "quality_rvq2x32.json"
    path.write_text(json.dumps(record))
    table = quality.markdown_table([str(path)]).splitlines()
    assert len(table) == 3
    cells = [c.strip() for c in table[2].strip("|").split("|")]
    assert cells == ["rvq2x32", "rvq", '{"num_quantizers": 2, "quantizer": "ema"}',
                     "k-means init, restart < 2", "0", "10.00", "1000", "300", "3.33", "0.1234",
                     "24.50", "0.900", "28.3"]


def _write_run(tmp_path, preset, seed, nmse, options=None):
    record = dict(
        flags=dict(preset=preset, seed=seed),
        quantizer=dict(quantizer="ema", bits_per_position=10.0,
                       quantizer_options=dict(options or {}, kmeans_init=True,
                                              dead_code_threshold=1.0, seed=seed)),
        rows=[dict(steps=5000, seconds=1.0, steps_per_s=1.0, val_nmse=nmse, val_psnr=25.0,
                   val_usage=1.0, val_perplexity_pooled=900.0)],
    )
    path = tmp_path / f"{preset}_{json.dumps(options)}_{seed}.json"
    path.write_text(json.dumps(record))
    return str(path)


def _cells(line):
    return [c.strip() for c in line.strip("|").split("|")]


def test_seed_table_pools_seeds_and_pairs_them_with_the_baseline(tmp_path):
    from scipy import stats

    base = {0: 0.052, 1: 0.050, 2: 0.054}
    # Lower than the baseline by 0.001 to 0.002 on every seed: a paired difference of known sign
    # that the seeds' own spread (0.002) would hide unpaired.
    other = {0: 0.0505, 1: 0.0490, 2: 0.0525}
    paths = [_write_run(tmp_path, "ema1024", seed, v) for seed, v in base.items()]
    paths += [_write_run(tmp_path, "ema_factorized1024", seed, v, {"codebook_dim": 16})
              for seed, v in other.items()]
    paths.append(_write_run(tmp_path, "fsq", 0, 0.06))
    lines = quality.seed_table(paths, baseline="ema1024").splitlines()
    assert len(lines) == 5
    rows = {cells[0]: cells for cells in map(_cells, lines[2:])}
    assert rows["ema1024"][4:7] == ["0, 1, 2", "0.0520", "[0.0470, 0.0570]"]
    assert rows["ema1024"][-1] == "baseline"
    factorized = rows["ema_factorized1024"]
    assert factorized[1] == '{"codebook_dim": 16}' and factorized[3] == "5000"
    differences = np.array([other[s] - base[s] for s in base])
    low, high = stats.t.interval(0.95, 2, loc=differences.mean(), scale=stats.sem(differences))
    assert factorized[7:] == [f"{differences.mean():.4f}", f"[{low:.4f}, {high:.4f}]", "lower"]
    assert rows["fsq"][4:] == ["0", "0.0600", "-", "0.0080", "-", "undetermined (one seed)"]
    # Without a baseline the comparison columns go.
    assert len(_cells(quality.seed_table(paths).splitlines()[2])) == 7
    with pytest.raises(ValueError, match="one rvq2x32 configuration"):
        quality.seed_table(paths, baseline="rvq2x32")
    with pytest.raises(ValueError, match="two runs"):
        quality.seed_table(paths + paths[:1])


@pytest.mark.parametrize("argv, message", [
    (["--preset=fsq", "--num_embeddings=512"], "without --num_embeddings"),
    (["--quantizer_options=[1]"], "JSON dict"),
    (["--library=sonnet", "--preset=lfq"], "Sonnet's EMA quantizer only"),
])
def test_flags_that_contradict_are_refused(argv, message):
    quality.FLAGS(["quality.py"] + argv)
    try:
        with pytest.raises(ValueError, match=message):
            quality._quantizer_flags()
    finally:
        quality.FLAGS.unparse_flags()


def test_flags_without_preset_give_the_notebook_quantizer():
    quality.FLAGS(["quality.py", "--kmeans_init", "--dead_code_threshold=2"])
    try:
        assert quality._quantizer_flags() == (
            "ema", 512, 64, dict(kmeans_init=True, dead_code_threshold=2.0, seed=0))
    finally:
        quality.FLAGS.unparse_flags()
