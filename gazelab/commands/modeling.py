"""`gazelab train predictor|editor`, `gazelab predict` and `gazelab edit`: the models' command line.

torch is imported inside each command, so `gazelab --help` stays fast.
"""
from __future__ import annotations

import os

import click

_PRESET = click.option("--preset", default="paper", show_default=True,
                       help="Config preset: paper (the paper's values) or tiny (CPU-test sized).")
_CONFIG = click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
                       help="YAML file of config overrides (unknown keys are refused).")
_DEVICE = click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")


def _training_options(command):
    options = [
        click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False),
                     help="A gazelab dataset dir (or, for predictors, a folder with images/ and maps/)."),
        _PRESET, _CONFIG, _DEVICE,
        click.option("--out", "out_dir", default=None, help="Run folder [default: runs/<name>]."),
        click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint."),
        click.option("--steps", type=click.IntRange(min=1), default=None,
                     help="Training steps [default: the config's max_steps]."),
        click.option("--batch-size", type=click.IntRange(min=1), default=None,
                     help="Batch size per process [default: the config's]."),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--ckpt-every", type=click.IntRange(min=1), default=None,
                     help="Steps between checkpoints [default: a tenth of the run, at most 1000]."),
        click.option("--keep-checkpoints", type=click.IntRange(min=0), default=3, show_default=True,
                     help="Newest step checkpoints kept besides last.pt (0: all)."),
        click.option("--random-backbone", is_flag=True,
                     help="Build the VGG backbone with random weights (offline use; recorded and reported)."),
        click.option("--weights", "weights_path", type=click.Path(dir_okay=False), default=None,
                     help="Backbone state_dict file instead of torchvision's cached ImageNet weights (random: same as --random-backbone)."),
        click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Data-loading worker processes."),
        click.option("--no-bf16", is_flag=True, help="Train in float32 on CUDA too."),
        click.option("--no-progress", is_flag=True, help="No progress bar (loss lines only)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.group("train")
def train() -> None:
    """Train saliency predictors and saliency-guided editors."""


@train.command("predictor")
@click.argument("name")
@_training_options
def train_predictor(name: str, **options) -> None:
    """Train the saliency predictor NAME (salgan, salg_detector) on a dataset's fixation maps."""
    _train("predictor", name, None, **options)


@train.command("editor")
@click.argument("name")
@click.option("--predictor", "predictor_ckpt", default=None, type=click.Path(dir_okay=False),
              help="Checkpoint of the trained saliency predictor the editor's losses use (required).")
@click.option("--ablation", default=None,
              help="One of the editor's ablations (salggan: no_spath, no_upath, no_dl, no_sald, e_no_sal, d_no_sal, "
                   "g_no_sal — SalG-GAN Table 3).")
@_training_options
def train_editor(name: str, predictor_ckpt: str | None, ablation: str | None, **options) -> None:
    """Train the editor NAME (gazeshiftnet, fgtransform, sagim, salggan, cyclegan_sal, bicyclegan_sal, hag)
    with a trained saliency predictor."""
    _train("editor", name, predictor_ckpt, ablation=ablation, **options)


@train.command("sweep")
@click.argument("sweep_file", type=click.Path(dir_okay=False, exists=True))
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False, exists=True))
@click.option("--predictor", "predictor_ckpt", default=None, type=click.Path(dir_okay=False, exists=True),
              help="The saliency predictor every editor run uses (required for editors).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Sweep folder: one run folder per run (a rerun skips finished runs, resumes cut ones).")
@click.option("--preset", default=None, help="Preset for every run, over the file's (e.g. tiny or cpu).")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Steps for every run, over the file's.")
@click.option("--random-backbone", is_flag=True, help="Random VGG backbones (offline use; recorded and reported).")
@_DEVICE
@click.option("--no-progress", is_flag=True, help="No progress bar (loss lines only).")
def train_sweep(sweep_file, data_dir, predictor_ckpt, out_dir, preset, steps, random_backbone, device,
                no_progress) -> None:
    """Train every run of SWEEP_FILE (e.g. models/examples/salggan_table3.yaml), then evaluate them together."""
    from models.sweep import load_sweep, run_sweep

    spec = load_sweep(sweep_file)
    extra = {"backbone_weights": "random"} if random_backbone else None
    results = _run(run_sweep, spec, data_dir, out_dir, predictor_ckpt=predictor_ckpt, preset=preset, steps=steps,
                   device=device, extra_overrides=extra, progress=not no_progress, echo=click.echo)
    for result in results:
        click.echo(f"  {result['name']}: {result['status']}, step {result['step']}, {result['checkpoint']}")
    if spec["kind"] == "editor":
        click.echo(f"next: gazelab evaluate --data {data_dir} --runs {out_dir} --predictor {predictor_ckpt or 'CKPT'} "
                   f"--out {out_dir}/evaluation")


@click.command("predict")
@click.option("--ckpt", required=True, type=click.Path(dir_okay=False),
              help="A predictor checkpoint (or a centre-bias .json fit).")
@click.option("--images", required=True, type=click.Path(), help="An image file or a folder of images.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@_DEVICE
def predict(ckpt: str, images: str, out_dir: str, device: str) -> None:
    """Predict saliency densities: OUT/<stem>.npy (float32, sums to 1) and OUT/<stem>.png."""
    from models.runs import describe_weights, predict_images

    result = _run(predict_images, ckpt, images, out_dir, device=device)
    for line in describe_weights(result["weights_info"]):
        click.echo(line)
    click.echo(f"{result['count']} saliency maps in {result['out_dir']}")


@click.command("edit")
@click.argument("name")
@click.option("--ckpt", required=True, type=click.Path(dir_okay=False), help="The trained editor's checkpoint.")
@click.option("--image", "image", default=None, type=click.Path(dir_okay=False), help="The image to edit.")
@click.option("--mask", default=None, type=click.Path(dir_okay=False),
              help="Object mask (label or binary image) for mask-guided editors (gazeshiftnet).")
@click.option("--object-id", type=int, default=None, help="Edit only the object with this label in --mask.")
@click.option("--target-map", default=None, type=click.Path(dir_okay=False),
              help="Target saliency map (.npy density or image) for the target-map editors (fgtransform, sagim, "
                   "salggan, cyclegan_sal, bicyclegan_sal, hag).")
@click.option("--data", "data_dir", default=None, type=click.Path(file_okay=False),
              help="Instead of --image: edit the X image of every pair of --split of this dataset.")
@click.option("--split", default="test", show_default=True, help="Split to edit with --data (train, val, test, or all).")
@click.option("--strength", type=click.FloatRange(0, 1), default=None, help="Edit strength in [0, 1].")
@click.option("--samples", type=click.IntRange(min=1), default=None, help="Several edit styles (latent samples).")
@click.option("--direction", type=click.Choice(["increase", "decrease"]), default=None,
              help="Draw attention to the object or away from it (gazeshiftnet).")
@click.option("--seed", type=int, default=None, help="Seed for sampled edit styles.")
@click.option("--sx", type=click.Choice(["predicted", "measured"]), default=None,
              help="salggan: the source saliency map S_x — predicted by its detector from X (default) or measured, "
                   "the pair's human map of X (with --data).")
@click.option("--predictor", "predictor_ckpt", default=None, type=click.Path(dir_okay=False),
              help="Saliency predictor for editors that use one while editing (salggan, cyclegan_sal, "
                   "bicyclegan_sal, hag) [default: the one the editor was trained with].")
@click.option("--out", "out", required=True, type=click.Path(), help="Output image (or folder with --data).")
@_DEVICE
def edit(name: str, ckpt: str, image: str | None, mask: str | None, object_id: int | None, target_map: str | None,
         data_dir: str | None, split: str, strength: float | None, samples: int | None, direction: str | None,
         seed: int | None, sx: str | None, predictor_ckpt: str | None, out: str, device: str) -> None:
    """Edit images with the trained editor NAME, guided by a mask or a target saliency map."""
    from models.runs import describe_weights, edit_dataset, edit_image

    options = {"strength": strength, "samples": samples, "direction": direction, "seed": seed, "sx": sx}
    options = {k: v for k, v in options.items() if v is not None}
    if (image is None) == (data_dir is None):
        raise click.UsageError("give exactly one of --image IN or --data DIR")
    if data_dir is not None:
        result = _run(edit_dataset, ckpt, data_dir, out, split=None if split == "all" else split, name=name,
                      device=device,
                      predictor_ckpt=predictor_ckpt, **options)
        message = f"{result['count']} edited images in {result['out_dir']}"
    else:
        result = _run(edit_image, ckpt, image, out, name=name, mask=mask, target_map=target_map,
                      object_id=object_id, device=device, predictor_ckpt=predictor_ckpt, **options)
        message = "edited image: " + ", ".join(result["outputs"])
    for line in describe_weights(result["weights_info"]):
        click.echo(line)
    click.echo(message)


COMMANDS = [train, predict, edit]


def _train(kind: str, name: str, predictor_ckpt: str | None, *, data_dir: str, preset: str, config_file: str | None,
           ablation: str | None = None,
           device: str, out_dir: str | None, resume: bool, steps: int | None, batch_size: int | None, seed: int,
           ckpt_every: int | None, keep_checkpoints: int, random_backbone: bool, weights_path: str | None, workers: int, no_bf16: bool, no_progress: bool) -> None:
    from models.runs import train as run_training

    if random_backbone and weights_path:
        raise click.UsageError("--random-backbone and --weights contradict each other; give one")
    overrides = {}
    if random_backbone or weights_path:
        overrides["backbone_weights"] = "random" if random_backbone else weights_path
    if ablation:
        from models.base import import_models, registry_of
        from models.sweep import ablation_overrides

        import_models()
        overrides = {**ablation_overrides(registry_of(kind).get(name), ablation), **overrides}
        click.echo(f"ablation {ablation}: {overrides}")
    out = out_dir or f"runs/{name}"
    result = _run(run_training, kind, name, data_dir, out, preset=preset, config=config_file,
                  overrides=overrides or None, predictor_ckpt=predictor_ckpt, steps=steps, batch_size=batch_size,
                  device=device, resume=resume, seed=seed, ckpt_every=ckpt_every, keep_checkpoints=keep_checkpoints,
                  num_workers=workers, bf16=not no_bf16,
                  progress=not no_progress, echo=click.echo)
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun only rank 0 reports
    losses = ", ".join(f"{k} {v:.4g}" for k, v in result["losses"].items())
    click.echo(f"trained {name} to step {result['step']} ({losses})")
    if result["validation"]:
        click.echo("validation: " + ", ".join(f"{k} {v:.4g}" for k, v in result["validation"].items()
                                              if k != "step"))
    click.echo(f"checkpoint: {result['checkpoint']} (config beside it); logs: {result['out_dir']}/log.csv")


def _run(function, *args, **kwargs):
    """Call `function`, turning model errors a user can fix (missing weights, divergence) into one line."""
    from models.backbones import WeightsUnavailable
    from models.trainer import TrainingDiverged

    try:
        return function(*args, **kwargs)
    except (WeightsUnavailable, TrainingDiverged) as exc:
        raise click.ClickException(str(exc)) from exc
