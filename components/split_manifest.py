"""Component 2: stratified train/validation/test split of the image manifest."""

from kfp.dsl import Dataset, Input, Metrics, Output

from components.manifests import manifest_columns
from components.packages import BASE_IMAGE, BASE_PACKAGES
from components.shipping import lightweight_component


def read_manifest_rows(path):
    """(column names, rows) of a manifest CSV."""
    import csv

    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames or [], list(reader)


def check_split_fractions(train_fraction, validation_fraction):
    """ValueError unless 0 < train_fraction <= 1 and the two fractions sum to at most 1."""
    if not (0 < train_fraction <= 1 and validation_fraction >= 0 and train_fraction + validation_fraction <= 1):
        raise ValueError(
            f"need 0 < train_fraction <= 1 and train_fraction + validation_fraction <= 1, "
            f"got {train_fraction} and {validation_fraction}"
        )


def manifest_to_split(manifest_path, imported_path=None):
    """(columns, rows) of the manifest with rows, the synthesized one or the imported one
    (both with rows is an error), its columns in the usual order (manifests.manifest_columns)
    then any others; ValueError without rows or without the gcs_uri and label columns."""
    fields, rows = read_manifest_rows(manifest_path)
    if imported_path is not None:
        imported_fields, imported_rows = read_manifest_rows(imported_path)
        if rows and imported_rows:
            raise ValueError("both image steps produced a manifest; expected synthesized or imported images, not both")
        if imported_rows or not rows:
            fields, rows = imported_fields, imported_rows
    if not rows:
        raise ValueError("the manifest has no rows: nothing to split")
    missing = {"gcs_uri", "label"} - set(fields)
    if missing:
        raise ValueError(f"the manifest lacks the column(s) {sorted(missing)}; columns present: {fields}")
    usual = manifest_columns()
    return [c for c in usual if c in fields] + [c for c in fields if c not in usual], rows


def split_class(row):
    """The class a row is stratified by: its defect type, else its status, else its label."""
    return row.get("defect_type") if row.get("status") == "Defect" else row.get("status") or row["label"]


def apportion(total, sizes):
    """Shares ``total`` among classes in proportion to ``sizes`` (largest remainder)."""
    whole = sum(sizes.values())
    quotas = {c: total * n / whole for c, n in sizes.items()}
    shares = {c: int(q) for c, q in quotas.items()}
    by_remainder = sorted(quotas, key=lambda c: (shares[c] - quotas[c], str(c)))
    for c in by_remainder[: total - sum(shares.values())]:
        shares[c] += 1
    return shares


def stratified_split(rows, train_fraction, validation_fraction, seed):
    """({split: rows}, {(split, class): rows}): groups of identical content (``sha256``, else
    ``gcs_uri``) move together; split-level targets (e.g. exactly 32/4/4 of 40) are shared out
    stratified by class, and every class keeps at least one training example."""
    import random
    from collections import defaultdict

    groups = defaultdict(list)
    for row in rows:
        groups[row.get("sha256") or row["gcs_uri"]].append(row)
    by_class = defaultdict(list)
    for key in sorted(groups):
        by_class[split_class(groups[key][0])].append(groups[key])
    sizes = {c: len(g) for c, g in by_class.items()}
    holdout = sum(sizes.values())
    n_validation = apportion(round(holdout * validation_fraction), sizes)
    n_test = apportion(holdout - round(holdout * train_fraction) - sum(n_validation.values()), sizes)

    rng = random.Random(seed)
    splits, counts = {"train": [], "validation": [], "test": []}, {}
    for name in sorted(by_class, key=str):
        class_groups = by_class[name]
        rng.shuffle(class_groups)
        n_val = min(n_validation[name], len(class_groups) - 1)
        n_tst = min(n_test[name], len(class_groups) - 1 - n_val)
        parts = {
            "validation": class_groups[:n_val],
            "test": class_groups[n_val : n_val + n_tst],
            "train": class_groups[n_val + n_tst :],
        }
        for split, part in parts.items():
            members = [row for group in part for row in group]
            splits[split].extend(members)
            counts[(split, name)] = len(members)
    return splits, counts


def split_metric_slug(name):
    """A class name as a metric name part: lower case, runs of other characters as "_"."""
    import re

    return re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_")


@lightweight_component(base_image=BASE_IMAGE, packages_to_install=BASE_PACKAGES, install_kfp_package=False)
def split_manifest(
    manifest: Input[Dataset],
    train_manifest: Output[Dataset],
    validation_manifest: Output[Dataset],
    test_manifest: Output[Dataset],
    split_metrics: Output[Metrics],
    train_fraction: float = 0.8,
    validation_fraction: float = 0.1,
    seed: int = 42,
    imported_manifest: Input[Dataset] = None,
):
    """Splits the manifest by class, so each split keeps the class mix.

    Images with the same content (``sha256`` column, when present) always land in the
    same split, so no test image is a copy of a training image. Each class keeps at
    least one training example. The split is a pure function of the manifest and seed.

    Args:
        manifest: CSV with at least gcs_uri and label columns (status, defect_type and
            sha256 are used when present).
        train_manifest: output CSV, same columns (those of manifests.manifest_columns first).
        validation_manifest: output CSV, same columns.
        test_manifest: output CSV, same columns.
        split_metrics: example counts per split and class (``split_*`` names).
        train_fraction: share for training, in (0, 1].
        validation_fraction: share for validation; the rest is the test split.
        seed: random seed of the shuffle.
        imported_manifest: the import step's manifest. The pipeline runs both image steps
            and the one that does not apply writes a header-only manifest; the split takes
            the one with rows (both with rows is an error).
    """
    import csv

    check_split_fractions(train_fraction, validation_fraction)
    fields, rows = manifest_to_split(manifest.path, imported_manifest.path if imported_manifest is not None else None)
    splits, counts = stratified_split(rows, train_fraction, validation_fraction, seed)
    outputs = {"train": train_manifest, "validation": validation_manifest, "test": test_manifest}
    for split, artifact in outputs.items():
        with open(artifact.path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(sorted(splits[split], key=lambda r: r["gcs_uri"]))
        artifact.metadata["examples"] = len(splits[split])
        split_metrics.log_metric(f"split_{split}_examples", len(splits[split]))
        print(f"{split}: {len(splits[split])} examples", flush=True)
    for (split, name), count in sorted(counts.items(), key=str):
        split_metrics.log_metric(f"split_{split}_{split_metric_slug(name)}", count)
    with open(split_metrics.path, "w") as f:  # a file at .path lets KFP cache this task
        f.write(repr(sorted(split_metrics.metadata.items())))
