"""Text classification as a user of AG News meets it: a CSV text column or a folder of .txt files per
class, tokenized with a vocabulary fitted on the training split and recorded in the run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from declarative.data import build_data
from declarative.model.builder import plan_model
from declarative.run import fit_spec, test_checkpoint
from declarative.safe_load import load_weights_only
from declarative.spec.validate import load_spec, semantic_problems
from trainer_specs import quiet

SPECS = Path(__file__).resolve().parents[1] / "specs"


FILLER = "the a of in on today report said new after week year people city local official".split()
KEYWORDS = (["goal", "match", "team", "coach"], ["market", "shares", "bank", "profit"])


def news_rows(n: int, seed: int) -> list[tuple[str, int]]:
    """Short texts of filler words; the class is planted as one keyword (some in capitals)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = i % 2
        words = list(rng.choice(FILLER, size=rng.integers(5, 12)))
        keyword = str(rng.choice(KEYWORDS[label]))
        words.insert(int(rng.integers(0, len(words) + 1)), keyword.upper() if i % 5 == 0 else keyword)
        rows.append((" ".join(words) + ".", label))
    return rows


def write_news(path: Path, n: int = 240, seed: int = 0) -> None:
    lines = ["text,label"] + [f"\"{text}\",{('sports', 'business')[label]}" for text, label in news_rows(n, seed)]
    path.write_text("\n".join(lines) + "\n")


def test_the_text_spec_learns_a_planted_keyword_and_tests_with_its_recorded_vocabulary(tmp_path):
    write_news(tmp_path / "news.csv")
    spec = load_spec(SPECS / "text_news.yaml", [f"data.source.CSV.path={tmp_path / 'news.csv'}", "logger=false",
                                                "trainer.enable_progress_bar=false",
                                                f"trainer.default_root_dir={tmp_path / 'runs'}"])
    run_dir = fit_spec(spec, console=quiet()).run_dir
    results = yaml.safe_load((run_dir / "results.json").read_text())
    assert results["test"]["test/accuracy"] > 0.9

    text = yaml.safe_load((run_dir / "spec.yaml").read_text())["data"]["source"]["CSV"]["columns"]["text"]
    assert text["vocabulary"][:2] == ["<pad>", "<unk>"] and "goal" in text["vocabulary"]
    assert text["max_length"] == 13 and text["min_freq"] == 2  # the longest training text: 11 words, a keyword, "."
    ckpt = load_weights_only(results["best_model_path"])
    assert ckpt["spec"]["data"]["source"]["CSV"]["columns"]["text"]["vocabulary"] == text["vocabulary"]
    embedding = next(v for k, v in ckpt["state_dict"].items() if k.endswith("0.weight"))
    assert embedding.shape[0] == len(text["vocabulary"])  # ${data.vocab_size}

    # tested from the checkpoint on new texts: the same vocabulary, however the new corpus's words differ
    write_news(tmp_path / "news.csv", n=100, seed=9)
    assert test_checkpoint(results["best_model_path"], console=quiet())["test/accuracy"] > 0.9


def text_folder(root: Path, texts: dict[str, list[str]]) -> None:
    for label, items in texts.items():
        (root / label).mkdir(parents=True)
        for i, text in enumerate(items):
            (root / label / f"{i}.txt").write_text(text)


def folder_spec(tmp_path: Path, source: str, layers: str = "[EmbeddingBag: {num_embeddings: 50, embedding_dim: 4}, "
                "{Linear: {out_features: 2}}]", extra: str = ""):
    (tmp_path / "t.yaml").write_text(f"seed: 0\ndata:\n  source: {source}\n{extra}model:\n  layers: {layers}\n"
                                     f"optimizer: SGD\nlogger: false\n")
    return load_spec(tmp_path / "t.yaml")


def test_text_folder_reads_characters_pads_and_maps_unknown_tokens(tmp_path):
    text_folder(tmp_path / "texts", {"neg": ["Bad", "awful!"], "pos": ["good", "zzz"]})
    spec = folder_spec(tmp_path, "{TextFolder: {root: texts, tokenizer: char, min_freq: 2}}",
                       extra="  test: {fraction: 0.25, order: last}\n")
    data = build_data(spec)
    vocabulary = spec.data.source.kwargs["vocabulary"]
    assert vocabulary[:2] == ["<pad>", "<unk>"] and vocabulary[2:] == ["a", "d", "o"]  # each seen twice; ties alphabetical
    assert spec.data.source.kwargs["max_length"] == 6  # the longest training text, "awful!"
    index = {token: i for i, token in enumerate(vocabulary)}
    assert data.train.inputs.dtype == torch.int64 and data.train.inputs.shape == (3, 6)
    assert data.train.inputs[0].tolist() == [1, index["a"], index["d"], 0, 0, 0]  # "bad", lowercased
    assert data.test.inputs.tolist() == [[1, 1, 1, 0, 0, 0]] and data.test.targets.tolist() == [1]
    assert data.vocab_size == 5


def test_a_model_that_starts_with_an_embedding_is_traced_with_token_ids(tmp_path):
    text_folder(tmp_path / "texts", {"neg": ["bad film"], "pos": ["good film"]})
    spec = folder_spec(tmp_path, "{TextFolder: {root: texts}}", layers="[Embedding: {num_embeddings: 9, "
                       "embedding_dim: 4}, Flatten, {Linear: {out_features: 2}}]")
    plan = plan_model(spec)  # input: auto — the data's two token ids, int64
    assert plan.input_shape == (2,) and [node.output_shape for node in plan.nodes] == [(2, 4), (8,), (2,)]
    (tmp_path / "t.yaml").write_text((tmp_path / "t.yaml").read_text().replace("layers:", "input: [2]\n  layers:"))
    spec = load_spec(tmp_path / "t.yaml")  # the data unread: the Embedding says ids
    assert plan_model(spec).output_shape == (2,)


def test_data_vocab_size_without_text_is_a_located_error(tmp_path):
    (tmp_path / "t.csv").write_text("a,y\n1,0\n2,1\n")
    spec_text = ("seed: 0\ndata:\n  source: {CSV: {path: t.csv, targets: y}}\nmodel:\n  layers:\n"
                 "    - Linear: {out_features: \"${data.vocab_size}\"}\noptimizer: SGD\n")
    (tmp_path / "t.yaml").write_text(spec_text)
    problem, = semantic_problems(load_spec(tmp_path / "t.yaml", semantic=False), read_data=True)
    assert str(problem).startswith(f"{tmp_path / 't.yaml'}:6:")
    assert "${data.vocab_size} has no value: the data has no text column" in str(problem)


def test_a_text_column_must_be_the_only_input(tmp_path):
    from declarative.errors import SpecError

    (tmp_path / "t.csv").write_text("text,n,y\nhello there,1,0\ngood day,2,1\n")
    spec = folder_spec(tmp_path, "{CSV: {path: t.csv, targets: y, columns: {text: {type: text}}}}")
    with pytest.raises(SpecError, match=r"column 'text' is a text column, and a text column is the table's only "
                                        r"input; set `inputs: \[text\]`"):
        build_data(spec)


def test_the_padding_mask_keeps_attention_off_the_padding(tmp_path):
    from declarative.model.builder import build_model

    text_folder(tmp_path / "texts", {"neg": ["bad film"], "pos": ["good film"]})
    layers = ("\n    - Identity:\n      name: ids\n    - padding_mask:\n      input: ids\n      name: pad\n"
              "    - Embedding: {num_embeddings: 9, embedding_dim: 8, padding_idx: 0}\n      input: ids\n"
              "      name: tokens\n    - TransformerEncoderLayer: {nhead: 2, dim_feedforward: 16, batch_first: true,"
              " dropout: 0.0}\n      input: [tokens, pad]")
    spec = folder_spec(tmp_path, "{TextFolder: {root: texts}}", layers=layers)
    torch.manual_seed(0)
    model = build_model(spec).eval()
    with torch.no_grad():
        padded = model(torch.tensor([[5, 3, 0, 0]]))
        alone = model(torch.tensor([[5, 3]]))
    assert torch.allclose(padded[:, :2], alone, atol=1e-5)  # the two <pad> positions change nothing
