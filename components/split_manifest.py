"""Component 2: stratified train/validation/test split of the image manifest."""

from kfp.dsl import Dataset, Input, Metrics, Output

from components.helpers import manifest_columns
from components.packages import BASE_IMAGE, BASE_PACKAGES
from components.shipping import lightweight_component


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
        train_manifest: output CSV, same columns (those of helpers.manifest_columns first).
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
    import random
    import re
    from collections import defaultdict

    if not (0 < train_fraction <= 1 and validation_fraction >= 0 and train_fraction + validation_fraction <= 1):
        raise ValueError(
            f"need 0 < train_fraction <= 1 and train_fraction + validation_fraction <= 1, "
            f"got {train_fraction} and {validation_fraction}"
        )

    def read(artifact):
        with open(artifact.path, newline="") as f:
            reader = csv.DictReader(f)
            return reader.fieldnames or [], list(reader)

    fields, rows = read(manifest)
    if imported_manifest is not None:
        imported_fields, imported_rows = read(imported_manifest)
        if rows and imported_rows:
            raise ValueError("both image steps produced a manifest; expected synthesized or imported images, not both")
        if imported_rows or not rows:
            fields, rows = imported_fields, imported_rows
    if not rows:
        raise ValueError("the manifest has no rows: nothing to split")
    missing = {"gcs_uri", "label"} - set(fields)
    if missing:
        raise ValueError(f"the manifest lacks the column(s) {sorted(missing)}; columns present: {fields}")
    # The manifest's columns in their usual order, then any others it carries, unchanged.
    fields = [c for c in manifest_columns() if c in fields] + [c for c in fields if c not in manifest_columns()]

    def class_of(row):
        return row.get("defect_type") if row.get("status") == "Defect" else row.get("status") or row["label"]

    # Groups of identical content move together; groups are stratified by class.
    groups = defaultdict(list)
    for row in rows:
        groups[row.get("sha256") or row["gcs_uri"]].append(row)
    by_class = defaultdict(list)
    for key in sorted(groups):
        by_class[class_of(groups[key][0])].append(groups[key])

    def apportion(total, sizes):
        """Shares ``total`` among classes in proportion to ``sizes`` (largest remainder)."""
        whole = sum(sizes.values())
        quotas = {c: total * n / whole for c, n in sizes.items()}
        shares = {c: int(q) for c, q in quotas.items()}
        by_remainder = sorted(quotas, key=lambda c: (shares[c] - quotas[c], str(c)))
        for c in by_remainder[: total - sum(shares.values())]:
            shares[c] += 1
        return shares

    # Split-level targets (e.g. exactly 32/4/4 of 40), shared out stratified by class;
    # every class keeps at least one training example.
    sizes = {c: len(g) for c, g in by_class.items()}
    holdout = sum(sizes.values())
    n_validation = apportion(round(holdout * validation_fraction), sizes)
    n_test = apportion(holdout - round(holdout * train_fraction) - sum(n_validation.values()), sizes)

    rng = random.Random(seed)
    splits = {"train": [], "validation": [], "test": []}
    counts = {}
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
        slug = re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_")
        split_metrics.log_metric(f"split_{split}_{slug}", count)
    with open(split_metrics.path, "w") as f:  # a file at .path lets KFP cache this task
        f.write(repr(sorted(split_metrics.metadata.items())))
