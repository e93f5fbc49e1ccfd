import pytest

from vaelib import VAEConfig


def test_defaults_are_the_seed_design():
    c = VAEConfig()
    assert (c.input_dim, c.hidden_dims, c.latent_dim) == (784, (256, 128), 2)
    assert c.batch_norm and c.dropout == 0.2 and c.beta == 1.0


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("latent_dim", 0, "latent_dim must be an integer >= 1"),
        ("latent_dim", 2.5, "latent_dim must be an integer >= 1"),
        ("beta", -1.0, "beta must be a finite number >= 0"),
        ("beta", float("nan"), "beta must be a finite number >= 0"),
        ("dropout", 1.0, "dropout must be in [0, 1)"),
        ("dropout", -0.1, "dropout must be in [0, 1)"),
        ("lr", 0, "lr must be a finite number > 0"),
        ("batch_size", 1, "batch_size must be an integer >= 2"),
        ("epochs", 0, "epochs must be an integer >= 1"),
        ("hidden_dims", (256, -1), "hidden_dims must be positive integers"),
        ("input_shape", (1, 0, 28), "input_shape must be positive integers"),
        ("scheduler", "step", "scheduler must be one of"),
        ("activation", "gelu", "activation must be one of"),
        ("device", "gpu", "device must be one of"),
        ("batch_norm", "yes", "batch_norm must be True or False"),
    ],
)
def test_bad_values_raise_a_clear_error(field, value, words):
    with pytest.raises(ValueError) as err:
        VAEConfig(**{field: value})
    assert words in str(err.value)
    assert repr(value) in str(err.value)  # the message shows what was passed


def test_key_ignores_device_but_not_training_fields():
    base = VAEConfig()
    assert base.key() == VAEConfig(device="cpu").key()
    assert base.key() != base.replace(beta=2.0).key()
    assert base.key() != base.replace(seed=1).key()


def test_numbers_are_normalised_so_equal_configs_share_one_key():
    assert (
        VAEConfig(beta=1, dropout=0, lr=1).key()
        == VAEConfig(beta=1.0, dropout=0.0, lr=1.0).key()
    )
    assert (
        VAEConfig(free_bits=1, sigma=1, scale_floor=1).to_dict()
        == VAEConfig(free_bits=1.0, sigma=1.0, scale_floor=1.0).to_dict()
    )
    assert isinstance(VAEConfig(beta=4).beta, float) and isinstance(
        VAEConfig(dropout=0).dropout, float
    )
    assert VAEConfig(beta=1).key() != VAEConfig(beta=1.5).key()


def test_dict_round_trip_and_unknown_fields():
    c = VAEConfig(latent_dim=10, hidden_dims=(64,))
    assert VAEConfig.from_dict(c.to_dict()) == c
    with pytest.raises(
        ValueError, match="Unknown VAEConfig field.*'latnet_dim'"
    ):
        VAEConfig.from_dict({"latnet_dim": 3})
