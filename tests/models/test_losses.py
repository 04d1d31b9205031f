import math

import pytest

torch = pytest.importorskip("torch")

from models import losses  # noqa: E402


def close(value, expected, tol=1e-5):
    return abs(float(value) - expected) <= tol * max(1.0, abs(expected))


def grad_of(loss_fn, *tensors):
    """Gradients of loss_fn(*tensors) w.r.t. each (fresh leaf copies)."""
    leaves = [t.detach().clone().requires_grad_(True) for t in tensors]
    loss_fn(*leaves).backward()
    return [leaf.grad for leaf in leaves]


def density(h=4, w=5, batch=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    raw = torch.rand(batch, 1, h, w, generator=generator) + 0.05
    return raw / raw.sum(dim=(2, 3), keepdim=True)


# GAN losses


def test_lsgan_values_and_sign():
    real, fake = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    # ½(mean((r−1)²) + mean(f²)) = ½(0.5 + 0.5)
    assert close(losses.lsgan_d(real, fake), 0.5)
    assert close(losses.lsgan_g(fake), 0.5)
    assert close(losses.lsgan_d(torch.ones(3), torch.zeros(3)), 0.0)
    assert losses.lsgan_d(torch.ones(3), torch.zeros(3)) < losses.lsgan_d(torch.zeros(3), torch.ones(3))
    assert losses.lsgan_g(torch.ones(3)) < losses.lsgan_g(torch.zeros(3))


def test_hinge_values_and_sign():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    # mean(relu(1 − r)) + mean(relu(1 + f)) = 0.25 + 0.5
    assert close(losses.hinge_d(real, fake), 0.75)
    assert close(losses.hinge_g(fake), 1.0)
    assert close(losses.hinge_d(torch.full((4,), 3.0), torch.full((4,), -3.0)), 0.0)
    assert losses.hinge_d(torch.full((4,), 3.0), torch.full((4,), -3.0)) < losses.hinge_d(
        torch.full((4,), -3.0), torch.full((4,), 3.0)
    )
    assert losses.hinge_g(torch.full((4,), 3.0)) < losses.hinge_g(torch.full((4,), -3.0))


def test_bce_gan_values_and_sign():
    zero = torch.zeros(2, 1, 3, 3)
    assert close(losses.bce_gan_d(zero, zero), 2 * math.log(2))
    assert close(losses.bce_gan_g(zero), math.log(2))
    high, low = torch.full((2, 1, 3, 3), 5.0), torch.full((2, 1, 3, 3), -5.0)
    assert losses.bce_gan_d(high, low) < 0.02 < losses.bce_gan_d(low, high)
    assert losses.bce_gan_g(high) < losses.bce_gan_g(low)


def test_gan_losses_average_over_discriminator_scales():
    real = [torch.ones(1, 1, 4, 4), torch.zeros(1, 1, 2, 2)]
    fake = [torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 2, 2)]
    assert close(losses.lsgan_d(real, fake), (0.0 + 0.5) / 2)
    assert close(losses.hinge_g(fake), 0.0)
    with pytest.raises(ValueError, match="2 and 1"):
        losses.hinge_d(real, fake[:1])


@pytest.mark.parametrize("name", ["lsgan", "hinge", "bce_gan"])
def test_gan_losses_send_gradients(name):
    d_loss, g_loss = getattr(losses, f"{name}_d"), getattr(losses, f"{name}_g")
    real, fake = torch.randn(2, 1, 3, 3), torch.randn(2, 1, 3, 3)
    for grad in grad_of(d_loss, real, fake):
        assert grad.abs().sum() > 0
    assert grad_of(g_loss, fake)[0].abs().sum() > 0


# feature losses


def test_content_loss_hand_values_default_weights_and_l1():
    a = {"x": torch.zeros(1, 1, 2, 2), "y": torch.zeros(1, 2, 1, 1)}
    b = {"x": torch.full((1, 1, 2, 2), 2.0), "y": torch.ones(1, 2, 1, 1)}
    assert close(losses.content_loss(a, b), (4.0 + 1.0) / 2)
    assert close(losses.content_loss(a, b, layers=["x"]), 4.0)
    assert close(losses.content_loss(a, b, weights=[1.0, 10.0]), 4.0 + 10.0)
    assert close(losses.content_loss(a, b, norm="l1"), (2.0 + 1.0) / 2)
    assert losses.content_loss(a, a) == 0


def test_content_loss_errors():
    a = {"x": torch.zeros(1, 1, 2, 2)}
    with pytest.raises(ValueError, match=r"\(1, 1, 2, 2\).*\(1, 1, 4, 4\)"):
        losses.content_loss(a, {"x": torch.zeros(1, 1, 4, 4)})
    with pytest.raises(ValueError, match="'z' is missing from feats_a"):
        losses.content_loss(a, a, layers=["z"])
    with pytest.raises(ValueError, match="2 weights for 1 layers"):
        losses.content_loss(a, a, weights=[1, 2])
    with pytest.raises(ValueError, match="norm"):
        losses.content_loss(a, a, norm="l3")


def test_gram_matrix_hand_value_and_symmetry():
    features = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # (1, 2, 1, 2)
    expected = torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 2
    torch.testing.assert_close(losses.gram_matrix(features), expected)
    gram = losses.gram_matrix(torch.randn(3, 5, 4, 6))
    assert gram.shape == (3, 5, 5)
    torch.testing.assert_close(gram, gram.transpose(1, 2))
    assert (torch.linalg.eigvalsh(gram) > -1e-5).all()  # positive semi-definite
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        losses.gram_matrix(torch.zeros(2, 3))


def test_texture_loss_hand_value_and_identity():
    a = {"l": torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])}
    b = {"l": torch.zeros(1, 2, 1, 2)}
    # G(a) = [[2.5, 5.5], [5.5, 12.5]], mean of squares over the 2×2 entries
    expected = (2.5**2 + 2 * 5.5**2 + 12.5**2) / 4
    assert close(losses.texture_loss(a, b), expected)
    assert losses.texture_loss(a, a) == 0
    # texture ignores where things are: a spatial permutation leaves the Gram matrix unchanged
    x = torch.randn(1, 3, 4, 4)
    shuffled = x.flatten(2)[..., torch.randperm(16)].view(1, 3, 4, 4)
    assert close(losses.texture_loss({"l": x}, {"l": shuffled}), 0.0, tol=1e-6)
    assert losses.content_loss({"l": x}, {"l": shuffled}) > 0
    pair = torch.randn(1, 2, 3, 3), torch.randn(1, 2, 3, 3)
    grads = grad_of(lambda p, q: losses.texture_loss({"l": p}, {"l": q}), *pair)
    assert all(g.abs().sum() > 0 for g in grads)
    with pytest.raises(ValueError, match="shape"):
        losses.texture_loss(a, {"l": torch.zeros(1, 2, 2, 2)})


def test_feature_losses_on_vgg_features_send_gradients_to_the_image():
    from models.backbones import VGGFeatures

    vgg = VGGFeatures("vgg19", layers=("relu1_1", "relu2_1"), weights="random")
    target = vgg(torch.rand(1, 3, 16, 16))
    image = torch.rand(1, 3, 16, 16, requires_grad=True)
    feats = vgg(image)
    (losses.content_loss(feats, target) + losses.texture_loss(feats, target)).backward()
    assert image.grad.abs().sum() > 0


# saliency losses


def test_kl_saliency_hand_value():
    target = torch.tensor([[[0.5, 0.5, 0.0, 0.0]]])  # (1, 1, 4)
    pred = torch.full((1, 1, 4), 0.25)
    # Σ p_t log(p_t / p̂) = log 2, zero-mass pixels contribute nothing
    assert close(losses.kl_saliency_loss(pred.log(), target), math.log(2))


def test_kl_saliency_nonnegative_zero_for_equal_and_per_image():
    p, q = density(seed=1), density(seed=2)
    assert close(losses.kl_saliency_loss(p.log(), p), 0.0, tol=1e-6)
    per_image = losses.kl_saliency_loss(q.log(), p, reduction="none")
    assert per_image.shape == (2,) and (per_image > 0).all()
    assert close(per_image.mean(), losses.kl_saliency_loss(q.log(), p))
    # 3-d maps work the same
    assert close(losses.kl_saliency_loss(q.log()[:, 0], p[:, 0]), losses.kl_saliency_loss(q.log(), p))


def test_kl_saliency_numerically_safe_and_differentiable():
    target = torch.tensor([[[[0.0, 1.0]]]])
    pred_log = torch.tensor([[[[-math.inf, 0.0]]]])  # zero predicted mass where the target has none
    assert close(losses.kl_saliency_loss(pred_log, target), 0.0)
    logits = torch.randn(2, 1, 4, 5, requires_grad=True)
    loss = losses.kl_saliency_loss(torch.log_softmax(logits.flatten(1), 1).view_as(logits), density())
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_kl_saliency_rejects_non_densities_and_mismatched_shapes():
    p = density()
    with pytest.raises(ValueError, match=r"target_density is not a density"):
        losses.kl_saliency_loss(p.log(), p * 3)
    with pytest.raises(ValueError, match=r"exp\(pred_log_density\) is not a density"):
        losses.kl_saliency_loss(p, p)
    with pytest.raises(ValueError, match="non-negative"):
        losses.kl_saliency_loss(p.log(), p - 0.1)
    pattern = r"pred_log_density has shape \(2, 1, 4, 5\) but target_density has shape \(2, 1, 5, 4\)"
    with pytest.raises(ValueError, match=pattern):
        losses.kl_saliency_loss(p.log(), density(5, 4))


def test_kl_saliency_accepts_bf16_rounding_but_not_real_errors():
    p = density(16, 16, seed=3)
    bf16_log = p.log().bfloat16()  # sums drift by ~1e-3 from rounding alone
    assert losses.kl_saliency_loss(bf16_log, p) < 1e-2
    with pytest.raises(ValueError, match="not a density"):
        losses.kl_saliency_loss((p * 1.2).log().bfloat16(), p)


def test_softmax_attention_loss_follows_eq_5():
    saliency = torch.tensor([[[[0.0, math.log(3.0)], [0.0, 0.0]]]])  # softmax: [1/6, 3/6, 1/6, 1/6]
    mask = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]])
    # −(1 / Σm) Σ S·m = −(3/6 + 1/6) / 2
    assert close(losses.softmax_attention_loss(saliency, mask), -1 / 3)
    # a density passed as-is; a flat map over H·W pixels gives −1/(H·W) whatever the mask
    flat = torch.full((1, 1, 8, 8), 1 / 64)
    assert close(losses.softmax_attention_loss(flat, mask.repeat(1, 1, 4, 4), normalization="none"), -1 / 64)
    # a log-density through the softmax is the density itself
    p = density(batch=1)
    assert close(losses.softmax_attention_loss(p.log(), (p > p.median()).float()),
                 losses.softmax_attention_loss(p, (p > p.median()).float(), normalization="none"))


def test_softmax_attention_loss_falls_as_masked_saliency_rises():
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :2] = 1
    low, high = torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)
    high[..., :2, :2] = 3.0
    assert losses.softmax_attention_loss(high, mask) < losses.softmax_attention_loss(low, mask) < 0
    grad = grad_of(lambda s: losses.softmax_attention_loss(s, mask), low)[0]
    assert (grad[..., :2, :2] < 0).all() and (grad[..., 2:, 2:] > 0).all()  # more inside, less outside


def test_softmax_attention_loss_errors():
    with pytest.raises(ValueError, match=r"no foreground in batch item\(s\) \[1\]"):
        mask = torch.ones(2, 1, 3, 3)
        mask[1] = 0
        losses.softmax_attention_loss(torch.zeros(2, 1, 3, 3), mask)
    with pytest.raises(ValueError, match=r"saliency has shape \(1, 1, 3, 3\) but mask has shape \(1, 1, 4, 4\)"):
        losses.softmax_attention_loss(torch.zeros(1, 1, 3, 3), torch.ones(1, 1, 4, 4))
    with pytest.raises(ValueError, match="normalization"):
        losses.softmax_attention_loss(torch.zeros(1, 1, 3, 3), torch.ones(1, 1, 3, 3), normalization="sum")


def test_bce_map_loss_hand_values_downsampling_and_logits():
    pred, target = torch.full((1, 1, 4, 4), 0.5), torch.ones(1, 1, 4, 4)
    assert close(losses.bce_map_loss(pred, target), math.log(2))
    # pooled by 2, a checkerboard of 0/1 becomes 0.5 everywhere, which BCE against 0.5 matches best
    board = (torch.arange(16).view(4, 4) + torch.arange(4).view(4, 1)) % 2
    board = board.float().view(1, 1, 4, 4)
    assert close(losses.bce_map_loss(torch.full_like(board, 0.5), board, downsample=2), math.log(2))
    assert close(losses.bce_map_loss(torch.zeros(1, 1, 4, 4), target, from_logits=True, downsample=1), math.log(2))
    assert close(losses.bce_map_loss(torch.zeros(1, 1, 4, 4), target, from_logits=True), math.log(2))
    assert losses.bce_map_loss(target * 0.99, target) < losses.bce_map_loss(target * 0.5, target)
    assert grad_of(lambda p: losses.bce_map_loss(p, target), torch.full((1, 1, 4, 4), 0.3))[0].abs().sum() > 0
    with pytest.raises(ValueError, match=r"pred has shape \(1, 1, 4, 4\) but target has shape \(1, 4, 4\)"):
        losses.bce_map_loss(pred, target[0])


# image losses


def test_gaussian_color_loss_values():
    a = torch.zeros(1, 3, 8, 8)
    b = torch.full((1, 3, 8, 8), 0.5)
    # a blur leaves constant images constant: |0 − 0.5| everywhere
    assert close(losses.gaussian_color_loss(a, b), 0.5)
    assert close(losses.gaussian_color_loss(a, b, norm="mse"), 0.25)
    weight = torch.zeros(1, 1, 8, 8)
    weight[..., :4, :] = 1
    assert close(losses.gaussian_color_loss(a, b, weight_map=weight), 0.25)
    assert close(losses.gaussian_color_loss(a, b, weight_map=weight[:, 0]), 0.25)
    assert losses.gaussian_color_loss(b, b) == 0


def test_gaussian_color_loss_ignores_fine_detail_but_not_colour_shifts():
    torch.manual_seed(0)
    image = torch.rand(1, 3, 32, 32)
    noise = 0.1 * torch.randn(1, 3, 32, 32)
    shift = torch.full((1, 3, 32, 32), 0.1)
    assert losses.gaussian_color_loss(image, image + noise) < 0.2 * losses.gaussian_color_loss(image, image + shift)
    assert close(losses.gaussian_color_loss(image, image + shift), 0.1, tol=1e-4)
    grads = grad_of(losses.gaussian_color_loss, image, image + noise)
    assert all(g.abs().sum() > 0 for g in grads)


def test_gaussian_blur_default_sigma_and_normalisation():
    impulse = torch.zeros(1, 1, 41, 41)
    impulse[..., 20, 20] = 1
    blurred = losses.gaussian_blur(impulse, 21, 3.5)
    assert close(blurred.sum(), 1.0)
    profile = blurred[0, 0, 20, 20:24] / blurred[0, 0, 20, 20]
    torch.testing.assert_close(profile, torch.exp(-torch.arange(4.0) ** 2 / (2 * 3.5**2)))


def test_gaussian_color_loss_errors():
    with pytest.raises(ValueError, match=r"a has shape \(1, 3, 8, 8\) but b has shape \(1, 3, 8, 9\)"):
        losses.gaussian_color_loss(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))
    with pytest.raises(ValueError, match="weight_map shape"):
        losses.gaussian_color_loss(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), weight_map=torch.ones(1, 1, 4, 4))
    with pytest.raises(ValueError, match="odd"):
        losses.gaussian_color_loss(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), kernel_size=4)


def test_cycle_loss_on_images_and_features():
    x, y = torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.5)
    assert close(losses.cycle_loss(x, y), 0.5)
    assert close(losses.cycle_loss(x, y, norm="mse"), 0.25)
    assert losses.cycle_loss(y, y) == 0
    feats = {"relu1_1": torch.zeros(1, 2, 2, 2)}, {"relu1_1": torch.ones(1, 2, 2, 2)}
    assert close(losses.cycle_loss(*feats), 1.0)
    assert grad_of(losses.cycle_loss, x, y)[0].abs().sum() > 0
    with pytest.raises(ValueError, match="reconstruction has shape"):
        losses.cycle_loss(x, y[..., :1])


def test_total_variation():
    assert losses.total_variation(torch.full((2, 3, 5, 5), 0.7)) == 0
    ramp = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 1, 3, 4)  # +1 per column, constant down rows
    assert close(losses.total_variation(ramp), 1.0)
    assert close(losses.total_variation(2 * ramp, norm="mse"), 4.0)
    assert grad_of(losses.total_variation, torch.rand(1, 3, 4, 4))[0].abs().sum() > 0
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        losses.total_variation(torch.zeros(3, 4, 4))


# latent losses


def test_kl_to_normal():
    zeros = torch.zeros(2, 8)
    assert losses.kl_to_normal(zeros, zeros) == 0
    mu, logvar = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(2.0)]])
    # ½[(1 + 1 − 1 − 0) + (0 + 2 − 1 − log 2)]
    assert close(losses.kl_to_normal(mu, logvar), 0.5 * (1 + 1 - math.log(2)))
    assert losses.kl_to_normal(torch.randn(4, 3), torch.randn(4, 3)) > 0
    grads = grad_of(losses.kl_to_normal, torch.randn(2, 3), torch.randn(2, 3))
    assert all(g.abs().sum() > 0 for g in grads)
    with pytest.raises(ValueError, match=r"mu has shape \(2, 8\) but logvar has shape \(2, 4\)"):
        losses.kl_to_normal(zeros, torch.zeros(2, 4))


def test_latent_regression_loss():
    z = torch.tensor([[1.0, -1.0], [0.0, 2.0]])
    assert close(losses.latent_regression_loss(torch.zeros(2, 2), z), 1.0)
    assert losses.latent_regression_loss(z, z) == 0
    assert grad_of(losses.latent_regression_loss, torch.zeros(2, 2), z)[0].abs().sum() > 0
    with pytest.raises(ValueError, match=r"z_pred has shape \(2, 2\) but z has shape \(2, 3\)"):
        losses.latent_regression_loss(z, torch.zeros(2, 3))
