"""Seeded synthetic patients stored as Parquet, a Dataset reading them, and padded batches."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import Dataset

from models.seqsetvae.config import CohortSpec

_DONE = "COMPLETE"


# ---------------------------------------------------------------------------------------------
# generation and storage


def _vocabulary(spec: CohortSpec) -> dict[str, np.ndarray]:
    """Variable names, 768-d embeddings (clustered, as related lab tests are), value statistics."""
    rng = np.random.default_rng([spec.seed, 1_000_003])
    groups = max(1, spec.vocab // 32)
    centres = rng.standard_normal((groups, spec.embed_dim))  # (G, D)
    group = rng.integers(0, groups, spec.vocab)  # (V,)
    emb = centres[group] + 0.5 * rng.standard_normal((spec.vocab, spec.embed_dim))  # (V, D)
    return {
        "name": np.array([f"v{i:05d}" for i in range(spec.vocab)]),
        "embedding": emb.astype(np.float32),
        "mean": rng.uniform(0.0, 100.0, spec.vocab),
        "std": rng.uniform(0.5, 20.0, spec.vocab),
        # How strongly a variable moves with the hidden severity that decides the label.
        "effect": rng.choice([-1.0, 0.0, 1.0], spec.vocab) * rng.uniform(0.5, 1.0, spec.vocab),
    }


def _patient(spec: CohortSpec, index: int, vocab: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int]:
    """One patient's raw events and outcome; patient i is the same whatever the cohort size."""
    rng = np.random.default_rng([spec.seed, index])
    severity = rng.standard_normal()
    base = np.log(spec.positive_rate / (1 - spec.positive_rate))
    label = int(rng.random() < 1 / (1 + np.exp(-(base + 1.5 * severity))))
    n_sets = int(rng.integers(spec.min_sets, spec.max_sets + 1))
    gaps = np.maximum(1.0, rng.lognormal(np.log(60.0), 1.2, n_sets))  # minutes between sets
    gaps[0] = 0.0
    minutes = np.round(np.cumsum(gaps), 1)
    sizes = rng.integers(spec.min_events, spec.max_events + 1, n_sets)
    variables = np.concatenate([rng.choice(spec.vocab, int(n), replace=False) for n in sizes])
    z = rng.standard_normal(variables.size)
    shift = 0.7 * severity * vocab["effect"][variables]  # the label's signal in the values
    values = vocab["mean"][variables] + vocab["std"][variables] * (z + shift)
    columns = {
        "variable": vocab["name"][variables],
        "value": values.astype(np.float32),
        "minute": np.repeat(minutes, sizes).astype(np.float32),
        "set_index": np.repeat(np.arange(n_sets), sizes).astype(np.int32),
    }
    return columns, label


def write_cohort(root: Path, spec: CohortSpec) -> None:
    """Write a cohort as the public code lays it out: one Parquet file per patient, plus the
    variable table (names, embeddings, normalisation statistics) and the labels."""
    root.mkdir(parents=True, exist_ok=True)
    vocab = _vocabulary(spec)
    emb = pa.FixedSizeListArray.from_arrays(pa.array(vocab["embedding"].reshape(-1)), spec.embed_dim)
    pq.write_table(
        pa.table({"variable": vocab["name"], "mean": vocab["mean"], "std": vocab["std"], "embedding": emb}),
        root / "variables.parquet",
    )
    (root / "patients").mkdir(exist_ok=True)
    labels = []
    for i in range(spec.patients):
        columns, label = _patient(spec, i, vocab)
        pq.write_table(pa.table(columns), root / "patients" / f"p{i:06d}.parquet")
        labels.append(label)
    pq.write_table(pa.table({"patient_id": np.arange(spec.patients), "label": np.array(labels)}),
                   root / "labels.parquet")
    (root / _DONE).write_text(json.dumps(asdict(spec)))


def cohort_dir(spec: CohortSpec, cache_root: Path | None = None) -> Path:
    """The cohort's directory, generated on first use and cached per spec under a temp folder."""
    base = cache_root or Path(tempfile.gettempdir()) / "seqsetvae-cohorts"
    key = hashlib.sha256(json.dumps(asdict(spec), sort_keys=True).encode()).hexdigest()[:16]
    root = base / key
    if (root / _DONE).exists():
        return root
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{key}-", dir=base))
    try:
        write_cohort(staging, spec)
        os.replace(staging, root)  # atomic; concurrent writers of the same spec race harmlessly
    except OSError:
        if not (root / _DONE).exists():
            raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return root


# ---------------------------------------------------------------------------------------------
# records and the Dataset


@dataclass(frozen=True)
class PatientRecord:
    """One patient: events of all sets in time order, the sets' sizes and timestamps, the label."""

    patient_id: int
    var: torch.Tensor  # (E, D) variable embeddings
    val: torch.Tensor  # (E,) z-scored values
    minutes: torch.Tensor  # (S,) set timestamps
    set_sizes: torch.Tensor  # (S,) int64 events per set
    label: torch.Tensor  # () float 0/1

    @property
    def n_sets(self) -> int:
        return int(self.set_sizes.numel())

    @property
    def n_events(self) -> int:
        return int(self.var.shape[0])

    def to(self, device: torch.device | str) -> PatientRecord:
        return PatientRecord(self.patient_id, self.var.to(device), self.val.to(device),
                             self.minutes.to(device), self.set_sizes, self.label.to(device))

    def sets(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(var (n, D), val (n,)) per set, as views."""
        sizes = self.set_sizes.tolist()
        return list(zip(self.var.split(sizes), self.val.split(sizes), strict=True))


def cap_events(record: PatientRecord, max_events: int | None) -> PatientRecord:
    """Keep the most recent whole sets holding at most ``max_events`` events (always >= 1 set).

    The public code's ``max_sequence_length`` keeps ``df.head(L)``: the *oldest* L events, cutting
    the last kept set in two. Keeping the newest whole sets is what an outcome model needs.
    """
    if max_events is None or max_events <= 0 or record.n_events <= max_events:
        return record
    sizes = record.set_sizes
    from_end = sizes.flip(0).cumsum(0).flip(0)  # (S,) events from set s to the end
    first = int((from_end > max_events).sum())
    first = min(first, record.n_sets - 1)
    start = int(sizes[:first].sum())
    return PatientRecord(record.patient_id, record.var[start:], record.val[start:],
                         record.minutes[first:], sizes[first:], record.label)


class PatientDataset(Dataset):
    """Reads one patient per Parquet file: embedding lookup and z-scoring as the public loader.

    ``max_events`` caps each patient's events (see ``cap_events``).
    """

    def __init__(self, root: Path | str, max_events: int | None = None) -> None:
        self.root = Path(root)
        if not (self.root / "variables.parquet").exists():
            raise FileNotFoundError(f"{self.root} holds no cohort (variables.parquet missing); "
                                    "create one with cohort_dir(spec)")
        self.files = sorted((self.root / "patients").glob("p*.parquet"))
        if not self.files:
            raise FileNotFoundError(f"no patient files under {self.root / 'patients'}")
        variables = pq.read_table(self.root / "variables.parquet")
        names = variables.column("variable").to_pylist()
        self.index = {name: i for i, name in enumerate(names)}
        emb = variables.column("embedding").combine_chunks()
        self.embedding = emb.values.to_numpy().reshape(len(names), -1)  # (V, D)
        self.mean = variables.column("mean").to_numpy().astype(np.float32)
        self.std = variables.column("std").to_numpy().astype(np.float32)
        labels = pq.read_table(self.root / "labels.parquet")
        self.labels = dict(zip(labels.column("patient_id").to_pylist(), labels.column("label").to_pylist(),
                               strict=True))
        self.max_events = max_events

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> PatientRecord:
        path = self.files[i]
        table = pq.read_table(path, read_dictionary=["variable"])
        variable = table.column("variable").combine_chunks()
        # Look up only the file's distinct names, then index by the dictionary codes.
        rows = np.array([self.index[name] for name in variable.dictionary.to_pylist()], dtype=np.int64)
        idx = rows[variable.indices.to_numpy()]  # (E,)
        raw = table.column("value").to_numpy()
        set_index = table.column("set_index").to_numpy()
        minute = table.column("minute").to_numpy()
        sizes = np.bincount(set_index)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        patient_id = int(path.stem[1:])
        record = PatientRecord(
            patient_id=patient_id,
            var=torch.from_numpy(self.embedding[idx]),
            val=torch.from_numpy((raw - self.mean[idx]) / self.std[idx]),
            minutes=torch.from_numpy(minute[starts].copy()),
            set_sizes=torch.from_numpy(sizes.astype(np.int64)),
            label=torch.tensor(float(self.labels[patient_id])),
        )
        return cap_events(record, self.max_events)


def load_patients(spec: CohortSpec, count: int, *, start: int = 0, max_events: int | None = None,
                  device: torch.device | str = "cpu") -> list[PatientRecord]:
    """``count`` patients of the cohort, read through the Dataset and moved to ``device``."""
    if count < 1 or start < 0 or start + count > spec.patients:
        raise ValueError(f"patients {start}..{start + count - 1} are not in a cohort of {spec.patients}")
    dataset = PatientDataset(cohort_dir(spec), max_events=max_events)
    return [dataset[i].to(device) for i in range(start, start + count)]


# ---------------------------------------------------------------------------------------------
# dynamic padding


@dataclass(frozen=True)
class PaddedBatch:
    """All sets of all patients in one padded tensor, plus the patients' padded set sequences.

    N is the number of sets in the batch, n the largest set, B patients, S the longest sequence.
    """

    patient_ids: tuple[int, ...]
    events_per_patient: tuple[int, ...]
    var: torch.Tensor  # (N, n, D)
    val: torch.Tensor  # (N, n)
    event_mask: torch.Tensor  # (N, n) bool, True for real events
    set_patient: torch.Tensor  # (N,) long, the patient of each set
    set_pos: torch.Tensor  # (N,) long, the set's position in its patient's sequence
    minutes: torch.Tensor  # (B, S); padding repeats the last timestamp
    set_mask: torch.Tensor  # (B, S) bool, True for real sets
    labels: torch.Tensor  # (B,)

    @property
    def n_patients(self) -> int:
        return len(self.patient_ids)

    @property
    def n_events(self) -> int:
        return int(sum(self.events_per_patient))

    def to(self, device: torch.device | str, non_blocking: bool = False) -> PaddedBatch:
        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device, non_blocking=non_blocking)

        return PaddedBatch(self.patient_ids, self.events_per_patient, move(self.var), move(self.val),
                           move(self.event_mask), move(self.set_patient), move(self.set_pos),
                           move(self.minutes), move(self.set_mask), move(self.labels))

    def pin_memory(self) -> PaddedBatch:
        """Called by DataLoader(pin_memory=True) on custom batch types."""
        return PaddedBatch(self.patient_ids, self.events_per_patient, *(
            t.pin_memory() for t in (self.var, self.val, self.event_mask, self.set_patient, self.set_pos,
                                     self.minutes, self.set_mask, self.labels)))


def collate_padded(records: Sequence[PatientRecord]) -> PaddedBatch:
    """Pad every set to the largest set and every sequence to the longest (DataLoader collate_fn)."""
    if not records:
        raise ValueError("cannot collate an empty list of patients")
    dims = {r.var.shape[1] for r in records}
    if len(dims) != 1:
        raise ValueError(f"patients disagree on the embedding size: {sorted(dims)}")
    device = records[0].var.device
    sizes = torch.cat([r.set_sizes for r in records]).cpu()  # (N,)
    n_sets = [r.n_sets for r in records]
    n_total, n_max, s_max = int(sizes.numel()), int(sizes.max()), max(n_sets)
    var_flat = torch.cat([r.var for r in records])  # (E, D)
    val_flat = torch.cat([r.val for r in records])  # (E,)
    event_mask = (torch.arange(n_max).unsqueeze(0) < sizes.unsqueeze(1)).to(device)  # (N, n)
    var = var_flat.new_zeros(n_total, n_max, var_flat.shape[1])  # (N, n, D)
    var[event_mask] = var_flat
    val = val_flat.new_zeros(n_total, n_max)  # (N, n)
    val[event_mask] = val_flat
    set_patient = torch.repeat_interleave(torch.arange(len(records)), torch.tensor(n_sets))  # (N,)
    set_pos = torch.cat([torch.arange(s) for s in n_sets])  # (N,)
    minutes = torch.stack([
        torch.cat([r.minutes, r.minutes[-1:].expand(s_max - r.n_sets)]) for r in records
    ])  # (B, S)
    set_mask = torch.arange(s_max).unsqueeze(0) < torch.tensor(n_sets).unsqueeze(1)  # (B, S)
    set_patient, set_pos, set_mask = set_patient.to(device), set_pos.to(device), set_mask.to(device)
    return PaddedBatch(
        patient_ids=tuple(r.patient_id for r in records),
        events_per_patient=tuple(r.n_events for r in records),
        var=var, val=val, event_mask=event_mask, set_patient=set_patient, set_pos=set_pos,
        minutes=minutes, set_mask=set_mask, labels=torch.stack([r.label for r in records]),
    )


def collate_list(records: Sequence[PatientRecord]) -> list[PatientRecord]:
    """The reference's "collate": patients stay separate, to be looped over one set at a time."""
    return list(records)
