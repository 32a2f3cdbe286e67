"""The ``gantrain`` command line. The only module that knows Typer.

Every command turns a :class:`UserError` into one ``error: ...`` line on stderr and exit code 2.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer  # noqa: E402

from gantrain.errors import UserError  # noqa: E402

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    help="Config-driven GAN training.\n\nExample:\n\n  gantrain fit configs/dcgan_mnist.yaml --set train.steps=2000",
)

SET_HELP = "Override a config value, parsed as YAML; repeatable. Example: --set train.steps=2000 --set data.batch_size=64"


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ start-up banner (oneDNN, CUDA probing) sent to /dev/null.

    TF_CPP_MIN_LOG_LEVEL cannot silence lines logged before absl is initialised, so stderr's file
    descriptor is pointed at /dev/null for the import only. Set GANTRAIN_TF_VERBOSE=1 to see them.
    """
    if os.environ.get("GANTRAIN_TF_VERBOSE") or "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow as tf

            tf.config.list_physical_devices()  # device probing logs (e.g. cuInit on CPU-only machines)
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def user_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _import_tensorflow_quietly()
        try:
            return fn(*args, **kwargs)
        except UserError as err:
            typer.echo(f"error: {err}", err=True)
            # Objects dropped on the way out (a half-restored checkpoint) would log TensorFlow
            # warnings after the one error line.
            logging.getLogger("tensorflow").setLevel(logging.ERROR)
            raise typer.Exit(err.exit_code)

    return wrapper


@app.command()
@user_errors
def fit(
    config: Optional[Path] = typer.Argument(None, help="YAML experiment config (not needed with --resume)."),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this directory from its latest checkpoint."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Where to write the run (default: runs/<name>)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Delete an existing run in the run directory first."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
):
    """Train a GAN from a config; checkpoints, grids, TensorBoard logs and metrics go to the run directory.

    Examples:

      gantrain fit configs/dcgan_mnist.yaml

      gantrain fit configs/dcgan_mnist.yaml --set train.steps=2000 --set data.batch_size=64

      gantrain fit --resume runs/dcgan_mnist --set train.steps=20000
    """
    from gantrain.run import fit as run_fit

    out = run_fit(config, overrides=set_, run_dir=run_dir, resume=resume, overwrite=overwrite, progress=not quiet)
    typer.echo(f"run directory: {out}  (tensorboard --logdir {out / 'tb'})")


@app.command()
@user_errors
def sample(
    run: Path = typer.Argument(..., help="Run directory, its checkpoints/ folder, or a checkpoint prefix like runs/x/checkpoints/ckpt-500."),
    n: int = typer.Option(64, "--n", min=1, max=100000, help="Number of images (with --labels: per listed class)."),
    out: Path = typer.Option(Path("samples.png"), "--out", "-o", help="Output: a .png grid, a folder (--format png) or a .npy file."),
    seed: int = typer.Option(0, "--seed", min=0, help="Noise seed; the same seed gives the same images."),
    fmt: str = typer.Option("auto", "--format", help="grid | png (one file per image) | npy | auto (from --out's suffix)."),
    checkpoint: str = typer.Option("latest", "--checkpoint", help="'latest', 'best' (with an eval section in training) or a step number."),
    label: Optional[int] = typer.Option(None, "--label", help="Conditional families: draw this class only."),
    labels: Optional[str] = typer.Option(None, "--labels", help="Conditional families: comma-separated classes, one grid row each."),
    per_class: Optional[int] = typer.Option(None, "--per-class", min=1, help="Conditional families: a grid with this many images of every class."),
    traverse: Optional[str] = typer.Option(None, "--traverse", help="InfoGAN: sweep continuous code c1, c2, ... from -2 to 2 (one categorical value per row)."),
    steps: int = typer.Option(10, "--steps", min=2, max=100, help="Columns of a --traverse grid."),
    animate: Optional[Path] = typer.Option(None, "--animate", help="Instead of sampling: write the grids saved during training (samples/step_*.png) "
                                           "as an animated GIF to this .gif file, the step written above each frame."),
    fps: float = typer.Option(4.0, "--fps", min=0.1, max=100, help="With --animate: frames per second."),
    every: int = typer.Option(1, "--every", min=1, help="With --animate: keep every Nth grid (the last one is always kept)."),
):
    """Draw images from a trained generator; no dataset needed.

    Examples:

      gantrain sample runs/dcgan_mnist --n 64 --out grid.png --seed 1

      gantrain sample runs/acgan_mnist --label 3 --n 16 --out threes.png

      gantrain sample runs/acgan_mnist --per-class 8 --out classes.png

      gantrain sample runs/infogan_mnist --traverse c1 --steps 10 --out c1.png

      gantrain sample runs/dcgan_mnist --animate progress.gif --fps 8
    """
    from gantrain.sampling import class_grid, generate, load_model, parse_labels, write_samples

    if animate is not None:
        from gantrain.animate import animate as write_gif

        clash = [flag for flag, v in (("--label", label), ("--labels", labels), ("--per-class", per_class), ("--traverse", traverse)) if v is not None]
        if clash:
            raise UserError(f"{clash[0]}: --animate plays the grids saved during training; drop {clash[0]}")
        frames = write_gif(run, animate, fps, every)
        typer.echo(f"wrote {len(frames)} frames (steps {frames[0]} to {frames[-1]}, {fps:g} per second) to {animate}")
        return
    if fmt == "auto":
        if out.suffix and out.suffix.lower() not in (".png", ".npy"):
            raise UserError(f"--out {out}: unknown output type {out.suffix!r}; give a .png file (one grid), a .npy file "
                            "(uint8 array) or a folder name without a suffix (one PNG per image), or set --format")
        fmt = {".png": "grid", ".npy": "npy"}.get(out.suffix.lower(), "png")
    if fmt not in ("grid", "png", "npy"):
        raise UserError(f"--format {fmt!r}: choose grid, png, npy or auto")
    which = _which(checkpoint)
    model, _, step = load_model(run, which)
    rows = None
    if traverse is not None:
        if label is not None or labels is not None or per_class is not None:
            raise UserError("--traverse draws its own rows; drop --label/--labels/--per-class")
        if not model.has_codes:
            raise UserError("--traverse: this run's model family has no latent codes to traverse (InfoGAN has)")
        images, rows = model.traversal(traverse, steps, seed)
    else:
        chosen = parse_labels(model, label, labels, per_class)
        if chosen is None:
            images = generate(model, n, seed)
        elif label is not None:
            images = generate(model, n, seed, [label] * n)
        else:
            images, rows = class_grid(model, chosen, per_class or n, seed)
    paths = write_samples(images, out, fmt, rows=rows)
    where = paths[0] if len(paths) == 1 else f"{out}/ ({len(paths)} files)"
    typer.echo(f"wrote {len(images)} images from step {step} to {where}")
    names = model.class_names
    if rows and traverse is None and names:
        classes = chosen if per_class is None or labels is not None else list(range(model.num_classes))
        typer.echo("rows, top to bottom: " + ", ".join(f"{c}={names[c]}" if c < len(names) else str(c) for c in classes))


@app.command()
@user_errors
def compare(
    runs: List[Path] = typer.Argument(..., help="Run directories, or folders searched for runs (folders holding config.yaml and metrics.jsonl)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON (for scripts) instead of the table."),
):
    """Compare runs side by side: family, loss, steps, wall time, latest and best eval metrics, and the config keys that differ.

    Runs being trained right now are marked "training".

    Examples:

      gantrain compare runs/

      gantrain compare runs/dcgan_mnist runs/wgan_gp_mnist --json
    """
    import json

    from gantrain.compare import compare_runs, format_table

    report = compare_runs(runs)
    typer.echo(json.dumps(report, indent=1) if as_json else format_table(report))


@app.command()
@user_errors
def export(
    run: Path = typer.Argument(..., help="Run directory, its checkpoints/ folder, or a checkpoint prefix like runs/x/checkpoints/ckpt-500."),
    fmt: str = typer.Option(..., "--format", help="keras (.keras file, standard layers only) | savedmodel (TF Serving) | tflite."),
    out: Path = typer.Option(..., "--out", "-o", help="Output path; a folder when the run has several generators (cyclegan: g_ab, g_ba)."),
    checkpoint: str = typer.Option("latest", "--checkpoint", help="'latest', 'best' (with an eval section in training) or a step number."),
    float16: bool = typer.Option(False, "--float16", help="tflite: store the weights as float16 (about half the size; outputs move by ~1e-3)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace exports that already exist."),
):
    """Export the trained generator(s), the EMA copy when the run kept one, for use without gantrain.

    The serving signature (savedmodel, tflite) is printed after export and documented in
    gantrain/export.py: noise families take z (and label), images in [-1, 1] come out.

    Examples:

      gantrain export runs/dcgan_mnist --format keras --out dcgan.keras

      gantrain export runs/cyclegan_horse2deer --format savedmodel --out exported/

      gantrain export runs/dcgan_mnist --format tflite --out dcgan.tflite --float16
    """
    from gantrain.export import describe_signature, export as run_export

    gens, paths = run_export(run, fmt, out, _which(checkpoint), float16, overwrite)
    for name, path in paths.items():
        typer.echo(f"wrote {gens.family} {name} from step {gens.step} ({gens.weights[name]}) as {fmt}: {path}")
        typer.echo(f"  {'serving_default' if fmt != 'keras' else 'inputs'}: {describe_signature(gens, name, fixed=fmt == 'tflite')}")


@app.command()
@user_errors
def translate(
    run: Path = typer.Argument(..., help="Run directory (or checkpoint prefix) of an image-to-image family: pix2pix or cyclegan."),
    source: Path = typer.Argument(..., help="An image file, or a folder of images (any size, grey or colour)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output image file (for one input) or folder (keeps the input file names)."),
    direction: str = typer.Option("a2b", "--direction", help="a2b (pix2pix: input -> target; cyclegan: A -> B) or b2a (cyclegan: B -> A)."),
    checkpoint: str = typer.Option("latest", "--checkpoint", help="'latest', 'best' or a step number."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace output files that already exist."),
):
    """Translate images with a trained pix2pix or CycleGAN generator.

    Images keep their size where the network is fully convolutional (sides it cannot take are
    reflection-padded, then cropped back). Grey inputs are repeated to a colour model's channels.

    Examples:

      gantrain translate runs/pix2pix_cifar10_colorize photos/ --out coloured/

      gantrain translate runs/cyclegan_horse2deer horse.png --out deer.png --direction a2b
    """
    from gantrain.translate import Translator, translate_files

    translator = Translator(run, direction, _which(checkpoint))
    written = translate_files(translator, source, out, overwrite)
    where = written[0] if len(written) == 1 else f"{out}/ ({len(written)} files)"
    typer.echo(f"translated {len(written)} image(s) {direction} with step {translator.step} ({translator.weights_source}) to {where}")


@app.command()
@user_errors
def classify(
    run: Path = typer.Argument(..., help="Run directory of a family with a classifier head (sgan)."),
    split: str = typer.Option("test", "--split", help="Which split of the run's dataset: test or train."),
    checkpoint: str = typer.Option("latest", "--checkpoint", help="'latest', 'best' (with an eval section in training) or a step number."),
):
    """Report the accuracy of the discriminator's classifier (semi-supervised GAN) on a labelled split.

    Example:

      gantrain classify runs/sgan_mnist --split test
    """
    from gantrain.classify import run_accuracy

    which = _which(checkpoint)
    acc, count, step, desc = run_accuracy(run, split, which)
    typer.echo(f"accuracy {acc:.4f} on {count} images ({desc}), checkpoint step {step}")


@app.command()
@user_errors
def validate(
    config: Path = typer.Argument(..., help="YAML experiment config."),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP),
):
    """Check a config (and that the data files it names exist) and print it fully resolved, or the error.

    Example:

      gantrain validate configs/dcgan_mnist.yaml --set train.steps=2000
    """
    from gantrain.config import dump, load_config
    from gantrain.data import check_data, require_roles
    from gantrain.registry import MODELS

    cfg = load_config(config, set_)
    provided = check_data(cfg["data"])  # the files it names exist (fit would fail on them later) ...
    family = cfg["model"]["family"]
    require_roles(MODELS.get(family).roles, provided, family, f"data.loader {cfg['data']['loader']!r}")  # ... and hold what the family reads
    typer.echo(dump(cfg), nl=False)


@app.command("list")
@user_errors
def list_(keys: bool = typer.Option(False, "--keys", help="Also list every config key with its default and meaning.")):
    """List registered model families, datasets, losses and optimizers (and config keys with --keys).

    Example:

      gantrain list --keys
    """
    from gantrain.config import SCHEMA, _ensure_registered
    import gantrain.extractors  # noqa: F401  (registers the extractors)
    from gantrain.registry import DATASETS, EXTRACTORS, LOSSES, MODELS, OPTIMIZERS
    from gantrain.schema import schema_docs

    _ensure_registered()
    for title, reg, section in (("model families (model.family)", MODELS, "model"), ("datasets (data.loader)", DATASETS, "data"),
                                ("losses (loss.name)", LOSSES, "loss"), ("optimizers (optimizer.*.name)", OPTIMIZERS, "optimizer.*")):
        typer.echo(f"{title}:")
        for entry in reg.entries():
            typer.echo(f"  {entry.name:<16} {entry.description}")
            if keys:
                for key, default, doc in schema_docs(entry.schema, f"{section}."):
                    typer.echo(f"      {key:<34} {default!r:<22} {doc}")
    typer.echo("feature extractors (gantrain eval --extractor):")
    for entry in EXTRACTORS.entries():
        typer.echo(f"  {entry.name:<24} {entry.description}")
    if keys:
        typer.echo("general keys:")
        for key, default, doc in schema_docs(SCHEMA):
            typer.echo(f"  {key:<36} {default!r:<22} {doc}")


classifier_app = typer.Typer(no_args_is_help=True, help="Domain classifiers: feature extractors for FID/KID/IS on small-image datasets.")
app.add_typer(classifier_app, name="classifier")


@classifier_app.command("train")
@user_errors
def classifier_train(
    config: Path = typer.Argument(..., help="A config whose data section names a labelled dataset (other sections are ignored)."),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP),
    out: Optional[Path] = typer.Option(None, "--out", help="Output stem: writes STEM.weights.h5 and STEM.json (default: runs/classifiers/<loader>_classifier)."),
    epochs: int = typer.Option(5, "--epochs", min=1, help="Passes over the training split."),
    augment: str = typer.Option("", "--augment", help="Comma-separated training augmentations: flip (mirror left-right), translation "
                                "(shift up to 1/8 of the side). For photographs, not digits. Default: none."),
):
    """Train a small CNN classifier on a labelled dataset and record its test accuracy.

    The result can be used as an extractor: gantrain eval RUN --extractor classifier --weights STEM.

    Example:

      gantrain classifier train configs/dcgan_mnist.yaml --set data.root=../shared/data/mnist --epochs 5
    """
    from gantrain.config import load_config
    from gantrain.extractors.classifier import train_classifier

    cfg = load_config(config, set_)
    stem = out or Path("runs") / "classifiers" / f"{cfg['data']['loader']}_classifier"
    record = train_classifier(cfg["data"], stem, epochs, cfg["seed"], augment=tuple(a.strip() for a in augment.split(",") if a.strip()))
    typer.echo(f"test accuracy {record['test_accuracy']:.4f} on {record['tested_on']}; wrote {stem}.weights.h5 and {stem}.json")


@app.command()
@user_errors
def upscale(
    run: Path = typer.Argument(..., help="Run directory (or checkpoint prefix) of a super-resolution family: srresnet or srgan."),
    source: Path = typer.Argument(..., help="An image file, or a folder of images (any size, grey or colour)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output image file (for one input) or folder (keeps the input file names)."),
    tile: int = typer.Option(128, "--tile", min=8, help="Tile side in input pixels: memory grows with its square, not with the image's."),
    overlap: int = typer.Option(16, "--overlap", min=0, help="Overlap of neighbouring tiles in input pixels, blended without seams."),
    checkpoint: str = typer.Option("latest", "--checkpoint", help="'latest', 'best' or a step number."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace output files that already exist."),
):
    """Upscale images with a trained SRResNet or SRGAN generator, in overlapping tiles.

    Example:

      gantrain upscale runs/srresnet_faces_x4 faces/ --out faces_x4/
    """
    from gantrain.translate import translate_files
    from gantrain.upscale import Upscaler

    upscaler = Upscaler(run, _which(checkpoint), tile, overlap)
    written = translate_files(upscaler, source, out, overwrite)
    where = written[0] if len(written) == 1 else f"{out}/ ({len(written)} files)"
    typer.echo(f"upscaled {len(written)} image(s) x{upscaler.scale} with step {upscaler.step} ({upscaler.weights_source}) to {where}")


@app.command("eval")
@user_errors
def eval_(
    run: Optional[Path] = typer.Argument(None, help="Run directory (its saved config names the real data)."),
    fid: bool = typer.Option(False, "--fid", help="Frechet distance (the default when no metric is named)."),
    kid: bool = typer.Option(False, "--kid", help="Kernel inception distance (unbiased MMD^2, cubic kernel), mean +- std over subsets."),
    is_: bool = typer.Option(False, "--is", help="Inception / classifier score, 10 splits."),
    pr: bool = typer.Option(False, "--pr", help="k-NN precision and recall (k = 3)."),
    accuracy: bool = typer.Option(False, "--accuracy", help="Conditional families: samples of class k classified as k; sgan: D's classifier accuracy."),
    n: int = typer.Option(10000, "--n", min=2, help="Generated samples (and at most this many real ones); with --real-a/--real-b, per folder (a seeded random subset, or all of a smaller folder)."),
    split: str = typer.Option("test", "--split", help="Real split to compare with (datasets that have splits)."),
    extractor: Optional[str] = typer.Option(None, "--extractor", help="Feature extractor (default: the run's eval.extractor and eval.weights, else the dataset's domain classifier, else inception_v3). See gantrain list."),
    weights: Optional[str] = typer.Option(None, "--weights", help="Extractor weights: a local file (Inception offline) or a classifier STEM."),
    checkpoint: str = typer.Option("latest", "--checkpoint", help="'latest', 'best' or a step number."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed for the generated samples."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the report here (eval.json in the run directory is always written)."),
    real_a: Optional[Path] = typer.Option(None, "--real-a", help="Compare two image folders instead of a run: the reference folder."),
    real_b: Optional[Path] = typer.Option(None, "--real-b", help="... and the folder compared with it."),
    size: Optional[int] = typer.Option(None, "--size", min=8, help="With --real-a/--real-b: resize images to this square size (default: the extractor's input size: 28 for the domain classifiers, else 299)."),
    channels: Optional[int] = typer.Option(None, "--channels", help="With --real-a/--real-b: 1 (grey) or 3 (RGB) (default: the extractor's: 1 for the domain classifiers, else 3)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Recompute real features instead of reading the cache."),
    hr_folder: Optional[Path] = typer.Option(None, "--hr-folder", help="Super-resolution runs: score on this folder of HR images (any size; e.g. Set5) instead of the held-out split."),
):
    """Score a run (FID, KID, IS, precision/recall, conditional accuracy), printing the protocol with each number.

    Examples:

      gantrain eval runs/dcgan_mnist --fid --kid --n 10000

      gantrain eval runs/acgan_mnist --accuracy --is

      gantrain eval --real-a DIR_A --real-b DIR_B --fid --extractor inception_v3 --weights inception_v3.h5
    """
    from gantrain.evaluate import evaluate_folders, evaluate_run, format_report, write_json
    from gantrain.translation_eval import evaluate_translation, translates, upscales

    metrics = [m for m, on in (("fid", fid), ("kid", kid), ("is", is_), ("pr", pr), ("accuracy", accuracy)) if on] or ["fid"]
    if real_a is not None or real_b is not None:
        if run is not None or real_a is None or real_b is None:
            raise UserError("compare folders with both --real-a DIR and --real-b DIR, and no RUN argument")
        report = evaluate_folders(real_a, real_b, metrics, size, channels, extractor, weights, n, not no_cache, seed=seed)
    else:
        if run is None:
            raise UserError("give a RUN directory, or --real-a DIR --real-b DIR")
        if hr_folder is not None and not upscales(run):
            raise UserError(f"--hr-folder: scores super-resolution runs (srresnet, srgan); {run} is not one")
        if upscales(run):  # super-resolution: PSNR/SSIM on Y against bicubic (gantrain/upscale.py)
            named = [m for m, on in (("--fid", fid), ("--kid", kid), ("--is", is_), ("--pr", pr), ("--accuracy", accuracy),
                                     ("--extractor", extractor), ("--weights", weights)) if on]
            if named:
                raise UserError(f"{named[0]}: super-resolution runs are scored with PSNR and SSIM against bicubic upscaling; drop the flag")
            from gantrain.upscale import evaluate_sr

            report = evaluate_sr(run, _which(checkpoint), n, hr_folder)
        elif translates(run):  # image-to-image runs: L1/PSNR/SSIM or cycle L1, FID and domain share (gantrain/translation_eval.py)
            named = [m for m, on in (("--kid", kid), ("--is", is_), ("--pr", pr), ("--accuracy", accuracy)) if on]
            if named:
                raise UserError(f"{named[0]}: image-to-image runs are scored with L1, PSNR and SSIM (pix2pix) or cycle L1, FID and the "
                                "domain classifier's share (cyclegan); drop the flag")
            report = evaluate_translation(run, _which(checkpoint), n, extractor, weights, seed)  # n: at most this many held-out images
        else:
            report = evaluate_run(run, metrics, n, split, extractor, weights, _which(checkpoint), seed, not no_cache)
        if hr_folder is None:  # the run's own score; a folder's goes to --json only
            write_json(report, Path(report["run_dir"]) / "eval.json")
    if json_out is not None:
        write_json(report, json_out)
    typer.echo(format_report(report))


def _which(checkpoint: str):
    return checkpoint if checkpoint in ("latest", "best") else _int(checkpoint, "--checkpoint")


def _int(text: str, flag: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UserError(f"{flag} {text!r}: expected 'latest', 'best' or a step number") from None


def main():
    app()


if __name__ == "__main__":
    sys.exit(main())
