import json

import pytest
import torch

from neuralcli.errors import RunDirError
from neuralcli.models.spike_teacher import SpikeTeacher, SpikeTeacherConfig, visible_slots
from neuralcli.runtime.checkpoint import save_model
from neuralcli.training.masking import random_token_mask

SESSIONS = {"big": 20, "small": 11}  # S = 8: 3 and 2 patches


def tiny_config(**overrides) -> SpikeTeacherConfig:
    values = dict(
        patch_size=8,
        d_model=32,
        num_layers=2,
        num_heads=4,
        predictor_d_model=16,
        predictor_layers=1,
        predictor_heads=2,
    )
    values.update(overrides)
    return SpikeTeacherConfig(**values)


def tiny_teacher(seed: int = 0) -> SpikeTeacher:
    torch.manual_seed(seed)
    return SpikeTeacher(config=tiny_config(), sessions=SESSIONS)


def mixed_inputs(seed: int = 1):
    """Three items: one of session 'big' (20 units), two of 'small' (11 units), T = 20."""
    generator = torch.Generator().manual_seed(seed)
    spikes = torch.randint(0, 4, (3, 20, 20), generator=generator)  # (B, T, U)
    n_units = torch.tensor([20, 11, 11])
    spikes[1:, :, 11:] = 0  # collate_paired zero-pads
    session = torch.tensor([0, 1, 1])
    return spikes, session, n_units


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="predictor_d_model"):
        tiny_config(predictor_d_model=18, predictor_heads=2)  # d_head 9 is odd
    with pytest.raises(ValueError, match="patch_size"):
        tiny_config(patch_size=6)  # 32 not divisible by 6
    with pytest.raises(ValueError, match="dropout"):
        tiny_config(dropout=1.0)
    with pytest.raises(ValueError, match="activation"):
        tiny_config(activation="relu")
    with pytest.raises(ValueError, match="max_count"):
        tiny_config(max_count=0)
    defaults = SpikeTeacherConfig()
    assert (defaults.patch_size, defaults.d_model, defaults.predictor_d_model) == (64, 256, 192)


def test_shapes_masked_and_unmasked_with_mixed_sessions():
    teacher = tiny_teacher()
    spikes, session, n_units = mixed_inputs()
    out = teacher(spikes, session, n_units)
    assert out.log_rates is None
    assert out.latents.shape == (3, 20, 32)
    assert out.token_valid.shape == (3, 60)
    assert out.token_valid[1].view(20, 3)[:, 2].sum() == 0  # 'small' has 2 patches
    valid = out.token_valid
    mask = random_token_mask(valid, valid.shape, 0.6, generator=torch.Generator().manual_seed(0))
    masked = teacher(spikes, session, n_units, mask)
    assert masked.latents is None
    assert masked.log_rates.shape == (3, 60, 8)
    assert torch.isfinite(masked.log_rates).all()
    assert teacher.encode(spikes, session, n_units).shape == (3, 20, 32)


def test_context_steps_encode_consecutive_windows_the_last_aligned_to_the_end():
    torch.manual_seed(0)
    teacher = SpikeTeacher(config=tiny_config(context_steps=6), sessions=SESSIONS).eval()
    spikes, session, n_units = mixed_inputs()  # T = 20: windows 0-5, 6-11, 12-17, then 14-19
    out = teacher(spikes, session, n_units)
    assert out.latents.shape == (3, 20, 32)
    whole = SpikeTeacher(config=tiny_config(), sessions=SESSIONS).eval()
    whole.load_state_dict(teacher.state_dict())
    windows = [whole.encode(spikes[:, a : a + 6], session, n_units) for a in (0, 6, 12)]
    last = whole.encode(spikes[:, 14:], session, n_units)[:, -2:]
    expected = torch.cat([*windows, last], dim=1)
    torch.testing.assert_close(out.latents, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(out.latents, whole.encode(spikes, session, n_units), atol=1e-3)
    torch.testing.assert_close(out.token_valid, whole(spikes, session, n_units).token_valid)
    short = teacher.encode(spikes[:, :4], session, n_units)  # shorter than the context
    torch.testing.assert_close(short, whole.encode(spikes[:, :4], session, n_units))
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="context_steps"):
            tiny_config(context_steps=bad)


def test_hidden_and_padded_inputs_cannot_influence_the_masked_forward():
    teacher = tiny_teacher().eval()
    spikes, session, n_units = mixed_inputs()
    valid = teacher.patch_targets(spikes, n_units).entry_valid.any(-1)  # (B, N)
    mask = random_token_mask(valid, valid.shape, 0.5, generator=torch.Generator().manual_seed(3))
    captured = []
    teacher.encoder.register_forward_hook(lambda module, args, output: captured.append(output))
    before = teacher(spikes, session, n_units, mask)
    changed = spikes.clone()
    hidden_entries = mask.view(3, 20, 3)[:, :, :, None].expand(3, 20, 3, 8).reshape(3, 20, 24)
    changed[hidden_entries[:, :, :20]] = 5  # every hidden token's counts
    changed[1:, :, 11:] = 3  # padded units of the 'small' items
    after = teacher(changed, session, n_units, mask)
    assert not torch.equal(changed, spikes)
    assert torch.equal(captured[0], captured[1])  # encoder output at the visible tokens
    torch.testing.assert_close(after.log_rates, before.log_rates, rtol=0, atol=0)
    # A visible token's counts do matter.
    visible_change = spikes.clone()
    first_visible = int((~mask[0] & valid[0]).nonzero()[0, 0])
    t, p = divmod(first_visible, 3)
    visible_change[0, t, p * 8 : p * 8 + 8] = 5 - visible_change[0, t, p * 8 : p * 8 + 8]
    moved = teacher(visible_change, session, n_units, mask).log_rates
    assert not torch.allclose(moved, before.log_rates)


def test_visible_slots_pack_visible_tokens_in_order():
    visible = torch.tensor([[True, False, True, False], [False, False, False, True]])
    index, slot_valid = visible_slots(visible)
    assert index[0].tolist() == [0, 2]
    assert index[1, 0] == 3
    assert slot_valid.tolist() == [[True, True], [True, False]]
    with pytest.raises(ValueError, match="visible"):
        visible_slots(torch.zeros(1, 3, dtype=torch.bool))


def test_mask_shape_and_window_length_are_checked():
    teacher = tiny_teacher()
    spikes, session, n_units = mixed_inputs()
    with pytest.raises(ValueError, match="mask must have shape"):
        teacher(spikes, session, n_units, torch.zeros(3, 20, dtype=torch.bool))
    short = SpikeTeacher(config=tiny_config(max_positions=10), sessions=SESSIONS)
    with pytest.raises(ValueError, match="max_positions"):
        short(spikes, session, n_units)


def test_patch_targets_keep_raw_counts_and_mark_padding():
    teacher = tiny_teacher()
    spikes = torch.zeros(2, 2, 11, dtype=torch.int64)
    spikes[0, 1, 9] = 9  # above max_count: the target keeps it
    spikes[1, 0, 10] = 4  # beyond n_units of item 1
    targets = teacher.patch_targets(spikes, torch.tensor([11, 10]))
    assert targets.values.shape == (2, 4, 8)
    assert targets.values[0, 3, 1] == 9
    assert targets.values.sum() == 9
    assert targets.entry_valid[0].sum() == 22 and targets.entry_valid[1].sum() == 20


def test_add_session_keeps_existing_outputs():
    teacher = tiny_teacher().eval()
    spikes, session, n_units = mixed_inputs()
    before = teacher.encode(spikes, session, n_units)
    assert teacher.add_session("new", 5) == 2
    assert teacher.sessions == ["big", "small", "new"]
    torch.testing.assert_close(teacher.encode(spikes, session, n_units), before)
    new = teacher.encode(spikes[:1, :, :5], torch.tensor([2]), torch.tensor([5]))
    assert new.shape == (1, 20, 32)


def test_save_and_from_pretrained_round_trip(tmp_path):
    teacher = tiny_teacher().eval()
    teacher.add_session("late", 9)
    save_model(
        tmp_path,
        teacher.state_dict(),
        kind=teacher.kind,
        config=teacher.config,
        extra={"sessions": teacher.session_counts},
    )
    loaded = SpikeTeacher.from_pretrained(tmp_path)
    assert not loaded.training
    assert loaded.session_counts == {"big": 20, "small": 11, "late": 9}
    spikes, session, n_units = mixed_inputs()
    torch.testing.assert_close(
        loaded.encode(spikes, session, n_units), teacher.encode(spikes, session, n_units)
    )


def test_from_pretrained_errors_are_run_dir_errors(tmp_path):
    teacher = tiny_teacher()
    save_model(tmp_path, teacher.state_dict(), kind=teacher.kind, config=teacher.config)
    with pytest.raises(RunDirError, match="sessions"):
        SpikeTeacher.from_pretrained(tmp_path)
    save_model(tmp_path, teacher.state_dict(), kind="lfp-encoder", config=teacher.config)
    with pytest.raises(RunDirError, match="spike-teacher"):
        SpikeTeacher.from_pretrained(tmp_path)
    meta = {"kind": "spike-teacher", "config": {"patch_size": 7}, "sessions": SESSIONS}
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(RunDirError, match="config is invalid"):
        SpikeTeacher.from_pretrained(tmp_path)


def test_parameter_groups_split_decay():
    teacher = tiny_teacher()
    decayed, free = teacher.parameter_groups(0.1)
    names = {id(p): name for name, p in teacher.named_parameters()}
    free_names = {names[id(p)] for p in free["params"]}
    assert "tokenizer.space_embedding.weight" in free_names
    assert "tokenizer.mask_vector" in free_names
    assert all(p.ndim >= 2 for p in decayed["params"])
    assert len(decayed["params"]) + len(free["params"]) == len(list(teacher.parameters()))


def test_freeze_except_sessions_leaves_only_the_space_embedding_trainable():
    teacher = tiny_teacher()
    teacher.freeze_except_sessions(["small"])
    assert teacher.channel_counts == [20, 11]
    trainable = [name for name, p in teacher.named_parameters() if p.requires_grad]
    assert trainable == ["tokenizer.space_embedding.weight"]
    spikes, session, n_units = mixed_inputs()
    teacher(spikes, session, n_units).latents.sum().backward()
    grad = teacher.tokenizer.space_embedding.weight.grad
    assert grad[:3].abs().sum() == 0 and grad[3:].abs().sum() > 0
