"""The adversarial training loop as a LightningModule (manual optimisation).

Per batch (the paper's order): render once the scenes that the layout sampler gives for the
batch's seeds (a fixed law's fresh or pooled layouts, or a learnable law's differentiable ones:
one code path, see :mod:`diffrendergan.scene.sampler`), G step on the render, then D step on the
same render detached — one render per batch, since rendering is the expensive part on CPU. Per
validation epoch: a weight-free realism metric (sliced Wasserstein distance on Laplacian
pyramids) between the held-out real patches and renders of a fixed set of evaluation layouts
with fixed noise, so values are comparable across epochs.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

import pytorch_lightning as pl
import torch

from diffrendergan.config import material_from_dict, renderer_from_dict
from diffrendergan.data.datasets import RealPatchDataset
from diffrendergan.data.scenes import SceneBatch, ScenePlan, SceneStream
from diffrendergan.metrics.realism import GreyLevelW1, SlicedWasserstein
from diffrendergan.models.generator import Generator
from diffrendergan.models.grain_profile import BANDS, grain_profile, onset_share, profile_gap
from diffrendergan.models.grain_windows import grain_windows, otsu_grain_level
from diffrendergan.models.granulometry import (
    MAX_RADIUS_PX,
    MIN_RADIUS_PX,
    mean_radius,
    pattern_spectrum,
    spectrum_gap,
)
from diffrendergan.models.quantile_matching import (
    BAND_STATISTICS,
    QUANTILES,
    band_quantiles,
    calibrate_start,
    quantile_gap,
    quantile_spread,
)
from diffrendergan.models.topography import Topography
from diffrendergan.scene.sampler import LayoutSampler, Scenes
from diffrendergan.schemas import ModelSchema, check_model
from diffrendergan.training.parts import GANParts, build_parts

log = logging.getLogger(__name__)

EVAL_SEED_BASE = 1_000_000_007  # evaluation layouts never collide with training seeds


@dataclass(frozen=True)
class EvalSample:
    """What every end-of-validation consumer (realism metric, grids, histograms, appearance)
    needs, made once per optimizer step: renders of the fixed evaluation layouts (eval mode,
    fixed noise), their parameters and exact masks, all on the CPU.

    Attributes:
        fake: (N, 1, H, W) renders in [0, 1].
        params: {name: (N,)} physical parameters used.
        classes: (N, H, W) uint8 3-class masks; instances: (N, H, W) long instance maps.
    """

    fake: torch.Tensor
    params: dict[str, torch.Tensor]
    classes: torch.Tensor
    instances: torch.Tensor


class GANModule(pl.LightningModule):
    """DiffRenderGAN training: the loop, given its built parts.

    Args:
        material, renderer: config dicts (see :mod:`diffrendergan.config`).
        model: the ``model`` config (a dict or :class:`~diffrendergan.schemas.ModelSchema`;
            None = defaults), checked once here. Its keys are documented in
            ``configs/model/gan.yaml``; the ones the loop reads:
            ``layout_pool`` (fixed pool of layouts, 0 = fresh every step), ``n_eval``
            (evaluation renders per validation), ``lr_decay`` / ``lr_end_factor`` (both learning
            rates fall linearly to that fraction over the run: a GAN settles instead of swinging
            at full step size), ``particle_weight`` w (the generator's loss weights each
            discriminator patch by 1 + w * its particle coverage, so the particles' appearance,
            not only the substrate's, drives the generator), ``topography.*`` (learning the size
            law: ``warmup_epochs`` of appearance-only training first, so its first gradients
            come from a discriminator that already compares plausible images; ``average_from``,
            the fraction of the law-learning epochs after which every step enters the reported
            Polyak-Ruppert average; ``signal``, what the law's gradient comes from: the
            critics, the quantile gap, or the granulometry gap, which reaches the law alone).
        seed: base of all layout seeds.
        parts: the built networks, losses and optimizer factories; None = built from ``model``
            (:func:`~diffrendergan.training.parts.build_parts`), which is how checkpoints load.
    """

    def __init__(
        self,
        material: dict[str, Any],
        renderer: dict[str, Any] | None = None,
        model: dict[str, Any] | ModelSchema | None = None,
        seed: int = 0,
        parts: GANParts | None = None,
    ):
        super().__init__()
        spec = model if isinstance(model, ModelSchema) else check_model(model or {})
        # Plain values only, so that a checkpoint rebuilds the module (parts from ``model``).
        self.save_hyperparameters(
            {"material": material, "renderer": renderer, "model": asdict(spec), "seed": seed}
        )
        self.spec = spec
        self.automatic_optimization = False
        if parts is None:
            parts = build_parts(material_from_dict(material), renderer_from_dict(renderer), spec)
        self.generator = parts.generator
        self.discriminator = parts.discriminator
        self.d_loss_fn, self.g_loss_fn = parts.d_loss, parts.g_loss
        self._optimizer_factories = (parts.optimizer_g, parts.optimizer_d)
        self.topography: Topography | None = parts.topography
        self.grain_discriminator = parts.grain_discriminator
        self.matches_profile = spec.profile_matching.weight > 0
        self.finds_grains = self.grain_discriminator is not None or self.matches_profile
        if self.finds_grains:
            # Buffers, so a checkpoint keeps the grain level and the real profile it trained with.
            level = spec.grain_discriminator.threshold
            self.register_buffer("grain_threshold", torch.tensor(float("nan") if level is None else level))
        if self.matches_profile:
            self.register_buffer("profile_target", torch.full((len(BANDS),), float("nan")))
        quantiles = spec.quantile_matching
        self.matches_quantiles = quantiles.start_steps > 0 or quantiles.weight > 0
        if self.matches_quantiles:  # buffers: a resumed run neither re-measures nor re-calibrates
            self.register_buffer("quantile_target", torch.full((BAND_STATISTICS, QUANTILES), float("nan")))
            self.register_buffer("start_calibrated", torch.tensor(quantiles.start_steps == 0))
        self.matches_granulometry = self.topography is not None and spec.topography.signal == "granulometry"
        if self.matches_granulometry:
            bins = MAX_RADIUS_PX - MIN_RADIUS_PX + 1
            self.register_buffer("granulometry_target", torch.full((bins,), float("nan")))
        self._val_real: list[torch.Tensor] = []
        # val/swd, val/hist_w1: the real validation patches are measured once (a cached reference, gathered
        # over DDP ranks by patch id) and every validation compares the evaluation renders to it.
        self.val_swd = SlicedWasserstein(seed=0)
        self.val_hist = GreyLevelW1()
        self._reference_ready = False
        self.last_realism: dict[str, float] = {}
        self._eval_cache: tuple[int, EvalSample] | None = None

    # ------------------------------------------------------------------ scenes
    @property
    def batches_seen(self) -> int:
        """Training batches so far (Lightning's global_step counts the G and D optimizer steps)."""
        return self.global_step // 2

    @property
    def scene_plan(self) -> ScenePlan:
        return ScenePlan(seed=int(self.hparams.seed), pool=self.spec.layout_pool)

    @property
    def layout_sampler(self) -> LayoutSampler:
        """Where training layouts come from: the learnable law when learning topography, else the
        generator's configured one (a property, so the learnable law is registered only once)."""
        return self.topography if self.topography is not None else self.generator.scene_law

    def scene_stream(self, workers: int = 0) -> SceneStream:
        """The training scenes for a data module's ``workers``: layouts of a fixed law with their
        G-buffers; for a learnable law only the seeds."""
        material = self.layout_sampler.worker_material
        return SceneStream(self.scene_plan, material, self.generator.renderer.cfg, workers=workers)

    def _scenes(self, batch: dict[str, Any] | torch.Tensor) -> tuple[torch.Tensor, SceneBatch]:
        """(real (B, 1, H, W), scenes) of a training batch. A loader of real patches alone (no
        scene stream attached) gets this rank's seeds from the same plan (the sampler draws)."""
        if isinstance(batch, dict):
            real = batch["real"]
            return real, batch["scenes"].head(real.shape[0])
        world = max(self.trainer.world_size, 1) if self._trainer is not None else 1
        seeds = self.scene_plan.seeds(self.global_rank, world, self.batches_seen, batch.shape[0])
        return batch, SceneBatch(seeds)

    def eval_layouts(self):
        """Fixed evaluation layouts of the sampler's current law."""
        return self.layout_sampler.layouts(self.eval_seeds())

    def export_generator(self) -> Generator:
        """The generator to write datasets with; its layouts follow the sampler's export law (a
        learned size and count law, when learning topography)."""
        self.generator.use_scene_law(self.layout_sampler.export_material())
        return self.generator

    def eval_seeds(self) -> list[int]:
        return [EVAL_SEED_BASE + self.hparams.seed * 1000 + i for i in range(self.spec.n_eval)]

    # ---------------------------------------------------------------- training
    def configure_optimizers(self):
        make_g, make_d = self._optimizer_factories
        groups = [{"params": [p for p in self.generator.parameters() if p.requires_grad]}]
        if self.topography is not None:  # same G loss, own learning rate and momentum
            # A few scalars with a noisy adversarial gradient: the GAN's beta1 = 0.5 makes Adam
            # close to sign-SGD (each step ~lr whatever the signal); beta1 = 0.9 averages the
            # gradient over ~10 steps, so the step follows its mean rather than its noise.
            t = self.spec.topography
            topo = [p for p in self.topography.parameters() if p.requires_grad]
            groups.append({"params": topo, "lr": t.lr, "betas": tuple(t.betas)})
        critics = [self.discriminator] + ([self.grain_discriminator] if self.grain_discriminator else [])
        opt_g, opt_d = make_g(groups), make_d([p for d in critics for p in d.parameters()])
        factor = self._lr_factor_fn()
        # The law's step stays constant unless asked: its reported value is the Polyak-Ruppert
        # average of its tail, which needs steps that still reach the equilibrium; with the GAN's
        # linear decay a law learned from 150 nm froze at 195 nm while one from 300 nm came down
        # to 232 nm (README, "The size law from the granulometry").
        law_factor = factor if self.spec.topography.decay_lr else (lambda batch: 1.0)
        g_factors = [factor, law_factor][: len(opt_g.param_groups)]
        scheds = [
            torch.optim.lr_scheduler.LambdaLR(opt_g, g_factors),
            torch.optim.lr_scheduler.LambdaLR(opt_d, factor),
        ]
        return [opt_g, opt_d], scheds

    def _lr_factor_fn(self):
        """Learning-rate factor per training batch: 1, or linear from 1 to ``lr_end_factor`` over
        the run's batches (known only with an epoch or step limit)."""
        total = self.trainer.estimated_stepping_batches if self._trainer is not None else float("inf")
        if self.spec.lr_decay == "constant" or not 0 < total < float("inf"):
            return lambda batch: 1.0
        end = float(self.spec.lr_end_factor)
        return lambda batch: 1.0 - (1.0 - end) * min(batch / max(total - 1, 1), 1.0)

    def _patch_weight(self, scenes: Scenes, grid: torch.Size) -> torch.Tensor | None:
        """(B, 1, h, w) weight 1 + particle_weight * particle coverage of each discriminator patch
        (from the layouts' exact masks: their G-buffers), or None when off."""
        w = float(self.spec.particle_weight)
        if w == 0:
            return None
        gbuffer = scenes.gbuffer
        if gbuffer is None:
            gbuffer = self.generator.renderer.gbuffer(scenes.layouts, device=self.device)
        coverage = gbuffer.particle
        return 1.0 + w * torch.nn.functional.adaptive_avg_pool2d(coverage, tuple(grid)).to(self.device)

    def _in_averaging_tail(self) -> bool:
        """Whether this epoch belongs to the averaged tail of the law's trajectory (never when the
        run has no epoch limit: then the EMA is reported)."""
        max_epochs = self.trainer.max_epochs if self._trainer is not None else None
        if max_epochs is None or max_epochs < 0:
            return False
        start = self.spec.topography.warmup_epochs
        return self.current_epoch >= start + self.spec.topography.average_from * (max_epochs - start)

    def _learning_law(self) -> bool:
        """Whether the sampler's geometry learns this epoch (a learnable law after its warm-up
        of appearance-only epochs; a fixed law ignores it)."""
        return self.topography is not None and self.current_epoch >= self.spec.topography.warmup_epochs

    def on_fit_start(self) -> None:
        """From all real training patches (every rank reads the same files: the same values),
        unless a checkpoint or the config has them: the grain level, the real grain profile and
        the real quantiles; then the calibrated start of the parameter network."""
        train_set = getattr(self.trainer.datamodule, "train_set", None)
        unset = self._grain_statistics_unset() or self._quantiles_unset() or self._granulometry_unset()
        if train_set is not None and unset:
            plain = RealPatchDataset(train_set.files)
            patches = torch.stack([plain[i] for i in range(len(plain))])
            self._real_statistics(patches)
        if self.matches_quantiles and not self._quantiles_unset() and not bool(self.start_calibrated):
            self._calibrate_start()

    def _quantiles_unset(self) -> bool:
        return self.matches_quantiles and bool(torch.isnan(self.quantile_target).any())

    def _granulometry_unset(self) -> bool:
        return self.matches_granulometry and bool(torch.isnan(self.granulometry_target).any())

    def _real_statistics(self, real: torch.Tensor) -> None:
        """Measure what the losses compare against from real patches (N, 1, H, W), where unset:
        all real training patches at the start, or the first real batch without a data module."""
        if self._grain_statistics_unset():
            self._real_grain_statistics(real)
        if self._quantiles_unset():
            self.quantile_target.copy_(band_quantiles(real.float()).to(self.quantile_target))
        if self._granulometry_unset():
            self.granulometry_target.copy_(pattern_spectrum(real.float()).to(self.granulometry_target))

    def _calibrate_start(self) -> None:
        """Fit the parameter network's output bias to the real quantiles (see calibrate_start);
        rank 0's fit is every rank's, in the network and in its EMA."""
        spec = self.spec.quantile_matching
        target, seed = self.quantile_target.cpu(), self.hparams.seed
        draw = self.layout_sampler.layouts  # the law training starts from
        result = calibrate_start(self.generator, target, spec.start_steps, spec.lr, spec.batch, seed, draw)
        bias = self.trainer.strategy.broadcast(self.generator.net.head.bias.detach().cpu(), src=0)
        self.generator.net.head.bias.data.copy_(bias)
        if self.generator.net_ema is not None:
            self.generator.net_ema.module.head.bias.data.copy_(bias)
        self.start_calibrated.fill_(True)
        space = self.generator.space
        start = space.to_physical(result.unit[None])
        shown = ", ".join(f"{k} {float(start[k][0]):.3g}" for k in space.learned)
        gap = f"{result.loss_before:.3f} -> {result.loss_after:.3f}"
        log.info("calibrated start: quantile gap %s; %s", gap, shown)

    def _renders(self, scenes: Scenes) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(what the critics judge, what the law learns from or None), both (B, 1, H, W).

        One render, unless a learning law takes its gradient from a statistic alone
        (``topography.signal``: ``quantiles`` or ``granulometry``): then the critics judge a
        render of the same layouts whose geometry carries no gradient, and a second,
        differentiable render is measured. A local critic that still tells the grains from real
        ones is answered more cheaply by fewer grain pixels than by better grains, so its
        verdicts shrink the law (on real TiO2 every adversarially learned law fell below the
        masks' sizes; README, "Learning the particle size law"); the quantiles, of all pixels,
        have no such preference, though they let grain brightness stand in for size (README,
        "Learning the size law from quantiles"). The granulometry's render is shaded by detached
        networks: its gap moves the law alone, and the quantiles then hold the judged render."""
        signal = self.spec.topography.signal
        if not (scenes.differentiable and signal in ("quantiles", "granulometry")):
            return self.generator.render(scenes).image, None
        judged = self.generator.render(Scenes(scenes.layouts)).image
        return judged, self.generator.render(scenes, appearance_grad=signal == "quantiles").image

    def _quantile_loss(self, fake: torch.Tensor) -> torch.Tensor:
        """The renders' (B, 1, H, W) quantile gap to the real patches (see quantile_gap)."""
        target = self.quantile_target
        return quantile_gap(band_quantiles(fake).to(target), target, quantile_spread(target))

    def _grain_statistics_unset(self) -> bool:
        """Whether the grain level or the real profile the losses need is still to be measured."""
        if not self.finds_grains:
            return False
        unset_profile = self.matches_profile and bool(torch.isnan(self.profile_target).all())
        return bool(torch.isnan(self.grain_threshold)) or unset_profile

    def _real_grain_statistics(self, real: torch.Tensor) -> None:
        """Fill the grain level and the profile target from real patches (N, 1, H, W) where unset
        (without a data module of files: from the first real batch)."""
        if torch.isnan(self.grain_threshold):
            self.grain_threshold.fill_(otsu_grain_level(real))
        if self.matches_profile and torch.isnan(self.profile_target).all():
            level, min_area = float(self.grain_threshold), self.spec.profile_matching.min_area_px
            self.profile_target.copy_(grain_profile(real.to(self.profile_target), level, min_area)[0])

    def _grain_windows(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 1, w, w) grain-centred windows of ``images`` (B, 1, H, W); see grain_windows."""
        g = self.spec.grain_discriminator
        return grain_windows(images, float(self.grain_threshold), g.window, g.min_area_px, g.per_image)

    def _profile_loss(self, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(``weight`` x the squared profile gap summed over bands, the largest absolute gap) of
        the renders (B, 1, H, W) against the real grains; see grain_profile."""
        spec = self.spec.profile_matching
        profile, counts = grain_profile(fake, float(self.grain_threshold), spec.min_area_px)
        gap = profile_gap(profile, self.profile_target, counts)
        return spec.weight * gap.pow(2).sum(), gap.detach().abs().max()

    def _profile_share(self, batch_idx: int) -> float:
        """Share of the profile-matching weight at this batch (see onset_share)."""
        spec, per_epoch = self.spec.profile_matching, self.trainer.num_training_batches
        within = batch_idx / per_epoch if math.isfinite(per_epoch) and per_epoch > 0 else 0.0
        return onset_share(self.current_epoch + within, spec.warmup_epochs, spec.ramp_epochs)

    def _grain_loss(self, loss_fn, *windows: torch.Tensor) -> torch.Tensor:
        """``weight`` x the grain discriminator's loss on the given windows. While a side has no
        grain there is no verdict: the loss is 0, with the network still in the graph (DDP needs
        every rank to use the same parameters)."""
        net, weight = self.grain_discriminator, self.spec.grain_discriminator.weight
        if any(len(w) == 0 for w in windows):
            return 0.0 * net(windows[0].new_zeros(1, 1, *windows[0].shape[-2:])).sum()
        return weight * loss_fn(*(net(w) for w in windows))

    def training_step(self, batch: dict[str, Any] | torch.Tensor, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        real, batch_scenes = self._scenes(batch)
        learn = self._learning_law()
        scenes = self.layout_sampler.sample(batch_scenes, learn)
        fake, law_render = self._renders(scenes)
        granulometric = self.spec.topography.signal == "granulometry"
        measured = fake if law_render is None or granulometric else law_render  # the quantiles'
        self._real_statistics(real)  # no data module of files: from the first real batch
        grains = self.grain_discriminator is not None
        real_w, fake_w = (self._grain_windows(real), self._grain_windows(fake)) if grains else (None, None)

        with self.toggled_optimizer(opt_g):
            d_fake_g = self.discriminator(fake)
            loss_g = self.g_loss_fn(d_fake_g, self._patch_weight(scenes, d_fake_g.shape[-2:]))
            if grains:
                loss_g = loss_g + self._grain_loss(self.g_loss_fn, fake_w)
            logs = {}
            if self.matches_profile:  # measured from the start, matched after the warm-up
                matching, logs["train/profile_gap"] = self._profile_loss(fake)
                logs["train/profile_share"] = share = self._profile_share(batch_idx)
                if share > 0:
                    loss_g = loss_g + share * matching
            if self.matches_quantiles:
                gap = self._quantile_loss(measured)
                logs["train/quantile_gap"] = gap.detach()
                if self.spec.quantile_matching.weight > 0:
                    loss_g = loss_g + self.spec.quantile_matching.weight * gap
            if self.matches_granulometry and law_render is not None:
                spectrum = pattern_spectrum(law_render)
                gap = spectrum_gap(spectrum, self.granulometry_target)
                logs["train/granulometry_gap"] = gap.detach()
                logs["train/grain_radius_px"] = mean_radius(spectrum.detach())
                loss_g = loss_g + gap  # reaches the law alone, whose Adam steps ignore its scale
            opt_g.zero_grad()
            self.manual_backward(loss_g)
            opt_g.step()
            self.generator.update_ema()
            self.layout_sampler.after_step(learn, tail=learn and self._in_averaging_tail())

        with self.toggled_optimizer(opt_d):
            d_real = self.discriminator(real)
            d_fake = self.discriminator(fake.detach())
            loss_d = self.d_loss_fn(d_real, d_fake)
            if grains:
                loss_d = loss_d + self._grain_loss(self.d_loss_fn, real_w, fake_w.detach())
            opt_d.zero_grad()
            self.manual_backward(loss_d)
            opt_d.step()
        for sched in self.lr_schedulers() if self.spec.lr_decay != "constant" else []:
            sched.step()  # manual optimisation: the schedules are stepped here, once per batch

        # StyleGAN-ADA's overfitting signal r_t = E[sign D(real)] (centred for LSGAN targets 0/1).
        centre = 0.5 if self.spec.loss.name == "lsgan" else 0.0
        r_t = torch.sign(d_real.detach() - centre).mean()
        self.log_dict(
            {"train/loss_g": loss_g.detach(), "train/loss_d": loss_d.detach(), "train/r_t": r_t, **logs},
            prog_bar=True,
            on_step=True,
            on_epoch=True,
            batch_size=real.shape[0],
        )

    # -------------------------------------------------------------- validation
    def on_validation_epoch_start(self) -> None:
        self._val_real = []
        if not self._reference_ready:
            self.val_swd.reset()
            self.val_hist.reset()

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        """batch: real patches (B,1,H,W) and their validation-set ids (B,)."""
        images, ids = batch
        self._val_real.append(images.detach().cpu())
        if not self._reference_ready:
            self.val_swd.update(images, real=True, ids=ids)
            self.val_hist.update(images, real=True, ids=ids)

    @property
    def val_real(self) -> torch.Tensor | None:
        """This rank's held-out real patches of the last validation, (R, 1, H, W) on the CPU."""
        return torch.cat(self._val_real) if self._val_real else None

    @torch.no_grad()
    def eval_sample(self) -> EvalSample:
        """The evaluation renders and masks (see :class:`EvalSample`); the weights only change
        with an optimizer step, so one sample per step is kept."""
        if self._eval_cache is not None and self._eval_cache[0] == self.global_step:
            return self._eval_cache[1]
        was_training = self.generator.training
        self.generator.eval()
        gen = torch.Generator(device=self.device).manual_seed(12345)
        layouts = self.eval_layouts()
        out = self.generator(layouts, generator=gen)
        self.generator.train(was_training)
        classes, instances = self.generator.renderer.masks(layouts)
        sample = EvalSample(out.image.cpu(), {k: v.cpu() for k, v in out.params.items()}, classes, instances)
        self._eval_cache = (self.global_step, sample)
        return sample

    def on_validation_epoch_end(self) -> None:
        real = self.val_real
        if real is None:
            return
        sample = self.eval_sample()
        fake, params = sample.fake, sample.params
        metrics = {}
        for name, metric in (("val/swd", self.val_swd), ("val/hist_w1", self.val_hist)):
            metric.update(fake, real=False)  # ids 0..n_eval-1: the same renders on every rank
            value = metric.compute()  # syncs over ranks, drops repeated ids
            metrics[name] = float(value["mean"] if isinstance(value, dict) else value)
            metric.reset_fake()
        if not self.trainer.sanity_checking:  # a sanity run sees only a few batches: not a reference
            self._reference_ready = True
        self.last_realism = metrics
        self.log_dict(metrics, prog_bar=True)
        for k, v in self.layout_sampler.summary().items():  # a learned law's estimate
            if v is not None:
                self.log(f"topography/{k}", float(v))
        for name, v in params.items():  # synced across ranks: on the module's device (NCCL has no CPU)
            v = v.to(self.device)
            self.log(f"params/{name}_mean", v.mean(), sync_dist=True)
            std = v.std() if v.numel() > 1 else torch.zeros((), device=self.device)
            self.log(f"params/{name}_std", std, sync_dist=True)
