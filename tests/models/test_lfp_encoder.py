import pytest
import torch

from neuralcli.errors import RunDirError
from neuralcli.models.lfp_encoder import LfpEncoder, LfpEncoderConfig
from neuralcli.runtime.checkpoint import save_model
from neuralcli.training.masking import random_token_mask

SESSIONS = {"wide": 20, "narrow": 11, "third": 16}  # S = 8: 3, 2 and 2 patches


def tiny_config(**overrides) -> LfpEncoderConfig:
    values = dict(patch_size=8, d_model=32, num_layers=2, num_heads=4, mlp_hidden=16)
    values.update(overrides)
    return LfpEncoderConfig(**values)


def tiny_encoder(seed: int = 0, **overrides) -> LfpEncoder:
    torch.manual_seed(seed)
    return LfpEncoder(config=tiny_config(**overrides), sessions=SESSIONS)


def mixed_inputs(seed: int = 1):
    """Three items: session 'wide' (20 channels) and two of 'narrow' (11), T = 20."""
    generator = torch.Generator().manual_seed(seed)
    lfp = torch.randn(3, 20, 20, generator=generator)  # (B, T, C)
    lfp[1:, :, 11:] = 0.0  # collate_paired zero-pads
    return lfp, torch.tensor([0, 1, 1]), torch.tensor([20, 11, 11])


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="value_embedding"):
        tiny_config(value_embedding="linear")
    with pytest.raises(ValueError, match="num_heads"):
        tiny_config(num_heads=5)
    with pytest.raises(ValueError, match="conv_kernel"):
        tiny_config(conv_kernel=0)
    with pytest.raises(ValueError, match="mask_token"):
        tiny_config(mask_token="yes")
    with pytest.raises(ValueError, match="embedding_std"):
        tiny_config(embedding_std=0.0)
    assert LfpEncoderConfig().patch_size == 32


@pytest.mark.parametrize("value_embedding", ["conv", "mlp"])
def test_shapes_with_mixed_sessions(value_embedding):
    encoder = tiny_encoder(value_embedding=value_embedding)
    lfp, session, n_channels = mixed_inputs()
    out = encoder(lfp, session, n_channels)
    assert out.reconstruction.shape == (3, 60, 8)
    assert out.latents.shape == (3, 20, 32)
    assert out.token_valid.shape == (3, 60)
    valid = out.token_valid
    mask = random_token_mask(valid, valid.shape, 0.5, generator=torch.Generator().manual_seed(0))
    masked = encoder(lfp, session, n_channels, mask)
    assert masked.reconstruction.shape == (3, 60, 8)
    assert encoder.encode(lfp, session, n_channels).shape == (3, 20, 32)
    assert encoder.training  # encode restores the mode


def test_hidden_and_padded_values_cannot_influence_the_output():
    encoder = tiny_encoder().eval()
    lfp, session, n_channels = mixed_inputs()
    valid = encoder.patch_targets(lfp, n_channels).entry_valid.any(-1)  # (B, N)
    mask = random_token_mask(valid, valid.shape, 0.5, generator=torch.Generator().manual_seed(2))
    before = encoder(lfp, session, n_channels, mask)
    hidden = mask.view(3, 20, 3)[:, :, :, None].expand(3, 20, 3, 8).reshape(3, 20, 24)
    changed = lfp.clone()
    changed[hidden[:, :, :20]] = 7.0
    changed[1:, :, 11:] = -3.0  # padded channels
    after = encoder(changed, session, n_channels, mask)
    torch.testing.assert_close(after.reconstruction, before.reconstruction, rtol=0, atol=0)
    torch.testing.assert_close(after.latents, before.latents, rtol=0, atol=0)


def test_single_session_copy_uses_one_table_for_every_input():
    encoder = tiny_encoder().eval()
    lfp, _, _ = mixed_inputs()
    narrow = lfp[:, :, :11]
    reference = encoder.encode(narrow, torch.tensor([1, 1, 1]))
    student = encoder.single_session("narrow")
    assert student.sessions == ["narrow"]
    assert student.tokenizer.space_embedding.weight.shape == (2, 32)
    assert set(student.state_dict()) == set(encoder.state_dict())
    assert not student.training
    # Session indices are ignored by a single-table model (distillation §3.5).
    torch.testing.assert_close(student.encode(narrow, torch.tensor([0, 2, 1])), reference)
    plain = encoder.single_session("third", mask_token=False)
    assert not plain.config.mask_token and "tokenizer.mask_vector" not in plain.state_dict()
    assert encoder.config.mask_token  # the source keeps its config
    with pytest.raises(ValueError, match="known sessions"):
        encoder.single_session("missing")


def test_add_session_keeps_existing_outputs():
    encoder = tiny_encoder().eval()
    lfp, session, n_channels = mixed_inputs()
    before = encoder.encode(lfp, session, n_channels)
    assert encoder.add_session("extra", 4) == 3
    torch.testing.assert_close(encoder.encode(lfp, session, n_channels), before)
    assert encoder.encode(lfp[:1, :, :4], torch.tensor([3])).shape == (1, 20, 32)


def test_save_and_from_pretrained_round_trip(tmp_path):
    encoder = tiny_encoder(value_embedding="mlp").eval()
    save_model(
        tmp_path,
        encoder.state_dict(),
        kind=encoder.kind,
        config=encoder.config,
        extra={"sessions": encoder.session_counts},
    )
    loaded = LfpEncoder.from_pretrained(tmp_path)
    assert loaded.sessions == list(SESSIONS)
    assert loaded.config == encoder.config
    lfp, session, n_channels = mixed_inputs()
    torch.testing.assert_close(
        loaded.encode(lfp, session, n_channels), encoder.encode(lfp, session, n_channels)
    )
    student = encoder.single_session("wide")
    save_model(
        tmp_path,
        student.state_dict(),
        kind=student.kind,
        config=student.config,
        extra={"sessions": student.session_counts},
    )
    assert LfpEncoder.from_pretrained(tmp_path).session_counts == {"wide": 20}


def test_from_pretrained_rejects_a_bad_vocabulary(tmp_path):
    encoder = tiny_encoder()
    save_model(
        tmp_path,
        encoder.state_dict(),
        kind=encoder.kind,
        config=encoder.config,
        extra={"sessions": {"wide": 20}},  # fewer space-embedding rows than the weights
    )
    with pytest.raises(RunDirError, match="do not match"):
        LfpEncoder.from_pretrained(tmp_path)
    with pytest.raises(RunDirError, match="does not exist"):
        LfpEncoder.from_pretrained(tmp_path / "nowhere")


def test_freeze_except_sessions_trains_only_the_new_rows():
    encoder = tiny_encoder()
    encoder.add_session("extra", 9)  # 2 new rows after 3 + 2 + 2
    assert encoder.channel_counts == [20, 11, 16, 9]
    encoder.freeze_except_sessions(["extra"])
    trainable = [name for name, p in encoder.named_parameters() if p.requires_grad]
    assert trainable == ["tokenizer.space_embedding.weight"]
    before = encoder.tokenizer.space_embedding.weight.detach().clone()
    optimizer = torch.optim.AdamW(encoder.parameter_groups(0.1), lr=0.01)
    lfp, _, _ = mixed_inputs()
    session = torch.tensor([0, 3, 1])
    out = encoder(lfp[:, :, :9], session, torch.tensor([9, 9, 9]))
    out.latents.square().mean().backward()
    optimizer.step()
    after = encoder.tokenizer.space_embedding.weight.detach()
    assert torch.equal(after[:7], before[:7])
    assert not torch.equal(after[7:], before[7:])
