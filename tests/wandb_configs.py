"""W&B sweep configs, ported from W&B's own tests, examples and docs, for tests/test_spec_wandb.py.

``VALID``: configs W&B accepts (its sweeps library's JSON schema and its search and stopping
code), which wssweep must accept once ported. ``INVALID``: configs W&B refuses, or that the
issue asks wssweep to refuse (``method: custom``, ``scheduler:``: W&B Launch), each with the key
path the error must name, in W&B's parameter names (the test renames them as it ports).

tests/test_spec_wandb.py also checks the cases against W&B's JSON schema, copied unchanged to
tests/wandb_sweep_schema.json (wandb/sweeps, MIT licence, Copyright (c) 2021 Weights and Biases).

Every entry cites where it came from: ``SWEEPS`` is github.com/wandb/sweeps at commit b1dfc5f
(tests/<file>::<test>, examples/<file>, or src/sweeps/config/schema.json#<definition> for a rule
of the schema that a config breaks); ``EXAMPLES_REPO`` is github.com/wandb/examples at 5cab887
(its published example sweeps: YAML files, and dicts in its notebooks); ``DOCS`` is
docs.wandb.ai's sweep pages. Tuples in W&B's
tests are lists here (YAML has no tuples); NumPy expressions are written out (np.exp(-2) ->
0.1353352832366127).
"""

from __future__ import annotations

import math
from typing import Any

import yaml

SWEEPS = "wandb/sweeps@b1dfc5f"
DOCS = "https://docs.wandb.ai/models/sweeps"
SCHEMA = f"{SWEEPS} src/sweeps/config/schema.json"


def _at(path: str) -> str:
    return f"{SWEEPS} {path}"


V123 = {"v1": {"values": [1, 2, 3]}}
ABC = {"a": {"values": [1, 2, 3]}}
HYPERDATA_PARAMS = {"a": {"values": [1, 2]}}  # test_hyperband_extensive_*: a stand-in search
EXAMPLE_PARAMS = {  # examples/sweep-bayes.yaml and its siblings
    "epochs": {"value": 5}, "variance": {"value": 5}, "sleep": {"value": 0.5},
    "base": {"values": [10, 15, 20]}, "increment": {"values": [0.1, 0.2, 0.3]},
    "direction": {"values": [-1, 0.1, 1]},
}
DEAM = {  # tests/test_schema.py::test_hyperband_missing_eta_imputed (a user's config)
    "command": ["${env}", "${interpreter}", "${program}", "sweep", "2dconv_lstm.stat.ac",
                "--dataset", "deam", "--temp_folder", "a_deam", "--batch-size"],
    "early_terminate": {"min_iter": 3, "type": "hyperband"},
    "method": "random",
    "metric": {"goal": "minimize", "name": "val/loss"},
    "name": "AC-2DConvLSTM-Stat-DEAM",
    "parameters": {
        "dropout": {"values": ["0.15", "0.2", "0.25", "0.3", "0.4", "0.5"]},
        "lr": {"values": ["0.001", "0.005", "0.01"]},
        "momentum": {"values": ["0.8", "0.9", "0.95"]},
        "n_fft": {"value": 1024}, "n_mels": {"value": 128},
    },
    "program": "exec.py",
    "project": "mer",
}
ELASTIC = {  # tests/test_bayes_search.py::test_that_constant_parameters_are_sampled_correctly
    "name": "Elastic Sweep 07-06 1027",
    "method": "bayes",
    "metric": {"goal": "maximize", "name": "IC_plus_Hitrate_risk_adj"},
    "parameters": {
        "tol": {"values": [1e-05, 0.0001, 0.0002, 2.5e-05, 5e-05, 7.5e-05]},
        "alpha": {"max": 6.907755278982137, "min": -9.210340371976182,
                  "distribution": "log_uniform"},
        "model": {"value": "ElasticNet"},
        "target": {"values": ["1D_spec", "5D_spec", "10D_spec"]},
        "l1_ratio": {"max": 1, "min": 0, "distribution": "uniform"},
        "selection": {"values": ["cyclic", "random"]},
        "decay_days": {"values": [1, 2, 3, 4, 5, 6]},
        "cat_columns": {"value": ["Sector", "Industry", "market_simple_regime"]},
        "num_columns": {"value": ["sales_a1.median", "sales_a1.std_dev", "ebit_a1.median",
                                  "Log Market Cap", "option_skew"]},
        "ppf_target_by": {"values": [None, "Sector", "Industry"]},
        "ppf_the_target": {"value": True},
    },
}
NAN_METRICS_PARAMS: dict[str, Any] = {  # tests/test_hyperband_stopping.py (a user's config)
    "lr": {"values": [0.001, 0.0003, 0.0001, 3e-05]},
    "pred_resnet_type_index": {"values": [0, 1, 2]},
    "pred_hidden_channel_type_index": {"values": list(range(10))},
    **{name: {"max": top, "min": 1, "distribution": "int_uniform"} for name, top in [
        ("pred_out_channels", 64), ("ia_char_embedding_size", 16),
        ("ja_char_embedding_size", 16), ("sr_pred_hidden_channels", 64),
        ("ia_mental_embedding_size", 64), ("ja_mental_embedding_size", 64),
        ("goal_pred_hidden_channels", 64), ("ia_char_hidden_input_size", 64),
        ("ja_char_hidden_input_size", 64), ("ia_char_hidden_output_size", 128),
        ("ja_char_hidden_output_size", 128), ("action_pred_hidden_channels", 64)]},
}
CATEGORICAL_LISTS = [[2, 3], [3, 4], ["5", "6"], [[7, 8], ["9", [10, 11]]]]
LOG_E = (0.1353352832366127, 20.085536923187668)  # np.exp(-2), np.exp(3)


def _bayes_x(x: dict[str, Any]) -> dict[str, Any]:
    return {"method": "bayes", "metric": {"name": "y", "goal": "maximize"},
            "parameters": {"x": x}}


def _random_v1(v1: dict[str, Any]) -> dict[str, Any]:
    return {"method": "random", "parameters": {"v1": v1}}


def _hyperband(early_terminate: dict[str, Any], goal: str = "minimize",
               method: str = "grid", parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"method": method, "metric": {"name": "loss", "goal": goal},
            "early_terminate": {"type": "hyperband", **early_terminate},
            "parameters": parameters or ABC}


VALID: list[dict[str, Any]] = [
    # --- tests/test_batch.py, tests/test_bayes_search.py
    {"source": _at("tests/test_batch.py::test_batch_random_search_same_answer_as_single_search"),
     "config": {"method": "random", "parameters": {"v1": {"values": [1, 2, 3]},
                                                   "v2": {"values": [4, 5]}}}},
    *({"source": _at("tests/test_bayes_search.py::"
                     f"test_bayes_search_handles_supported_parameter_distributions[{i}]"),
       "config": _bayes_x(x)} for i, x in enumerate([
           {"distribution": "normal", "mu": 2, "sigma": 4},
           {"distribution": "log_uniform_values", "min": LOG_E[0], "max": LOG_E[1]},
           {"min": 0.0, "max": 5.0},
           {"min": 0, "max": 5},
           {"distribution": "q_uniform", "min": 0.0, "max": 10.0, "q": 0.25}])),
    {"source": _at("tests/test_bayes_search.py::test_bayes_search_converges_on_simple_quadratic"),
     "config": {"method": "bayes", "metric": {"name": "loss", "goal": "minimize"},
                "parameters": {"x": {"min": 0.0, "max": 1.0}}}},
    {"source": _at("tests/test_bayes_search.py::test_runs_bayes_runs2_missingmetric"),
     "config": {"metric": {"name": "loss", "goal": "minimize"}, "method": "bayes",
                "parameters": {"v2": {"min": 1, "max": 10}}}},
    {"source": _at("tests/test_bayes_search.py::test_runs_bayes_runs2_missingmetric_acc"),
     "config": {"method": "bayes", "metric": {"name": "acc", "goal": "maximize"},
                "parameters": {"v1": {"min": 1, "max": 10}, "v2": {"min": 1, "max": 10}}}},
    {"source": _at("tests/test_bayes_search.py::test_runs_bayes_categorical_list"),
     "config": {"method": "bayes", "metric": {"name": "acc", "goal": "maximize"},
                "parameters": {"v1": {"distribution": "categorical", "values": CATEGORICAL_LISTS},
                               "v2": {"min": 1, "max": 10}}}},
    {"source": _at("tests/test_bayes_search.py::"
                   "test_bayes_categorical_list_values_normalize_and_round_trip"),
     "config": {"method": "bayes", "metric": {"name": "acc", "goal": "maximize"},
                "parameters": {"v1": {"distribution": "categorical",
                                      "values": CATEGORICAL_LISTS}}}},
    {"source": _at("tests/test_bayes_search.py::test_bayes_can_handle_preemptible_or_preempting"
                   "_runs"),
     "config": {"method": "bayes", "metric": {"name": "acc", "goal": "maximize"},
                "parameters": {"v1": {"distribution": "categorical", "values": CATEGORICAL_LISTS},
                               "v2": {"min": 1, "max": 10}}}},
    {"source": _at("tests/test_bayes_search.py::test_that_constant_parameters_are_sampled_"
                   "correctly"),
     "config": ELASTIC},
    {"source": _at("tests/test_bayes_search.py::test_runs_bayes_runs2_boolmetric"),
     "config": {"metric": {"name": "xloss", "goal": "minimize"}, "method": "bayes",
                "parameters": {"v2": {"min": 1, "max": 10}}}},
    {"source": _at("tests/test_bayes_search.py::test_bayes_impute_best"),
     "config": {"method": "bayes", "metric": {"name": "loss", "goal": "minimize",
                                              "impute": "best"},
                "parameters": {"a": {"min": 0.0, "max": 1.0}}}},
    {"source": _at("tests/test_bayes_search.py::"
                   "test_construct_gp_data_imputes_failed_run_with_latest_history_metric"),
     "config": {"method": "bayes", "metric": {"name": "loss", "goal": "minimize",
                                              "impute": "latest"},
                "parameters": {"a": {"min": 0.0, "max": 1.0}}}},
    {"source": _at("tests/test_bayes_search.py::"
                   "test_construct_gp_data_imputes_missing_finished_metric_with_failed_value"),
     "config": {"method": "bayes", "metric": {"name": "loss", "goal": "minimize",
                                              "impute": "best"},
                "parameters": {"x": {"min": 0.0, "max": 1.0}}}},
    {"source": _at("tests/test_bayes_search.py::"
                   "test_bayes_impute_while_running_best_includes_running_run"),
     "config": {"method": "bayes", "metric": {"name": "y", "goal": "maximize",
                                              "impute_while_running": "best"},
                "parameters": {"x": {"distribution": "log_uniform_values",
                                     "min": LOG_E[0], "max": LOG_E[1]}}}},
    {"source": _at("tests/test_bayes_search.py::"
                   "test_bayes_impute_while_running_best_guides_search"),
     "config": {"method": "bayes", "metric": {"name": "loss", "goal": "minimize",
                                              "impute_while_running": "best"},
                "parameters": {"x": {"min": 0.0, "max": 1.0}}}},
    # --- tests/test_config.py
    {"source": _at("tests/test_config.py::"
                   "test_invalid_sweep_config_nonuniform_array_elements_categorical"),
     "config": {"method": "grid", "parameters": {"v1": {"values": [None, 2, 3, "a", [2, 3]]}}}},
    {"source": _at("tests/test_config.py::test_early_terminate_without_scheduler_still_works"),
     "config": {"method": "bayes", "metric": {"name": "loss", "goal": "minimize"},
                "early_terminate": {"type": "hyperband", "min_iter": 3}, "parameters": V123}},
    # --- tests/test_grid_search.py
    {"source": _at("tests/test_grid_search.py::test_grid_search_with_list_values"),
     "config": {"method": "grid", "parameters": {"v1": {"values": ["", [9, 5]]},
                                                 "v2": {"values": [256, 512]}}}},
    {"source": _at("tests/test_grid_search.py::"
                   "test_grid_search_duplicated_values_are_not_duplicated_in_answer"),
     "config": {"method": "grid", "parameters": {
         "v1": {"values": [None, 2, 3, "a", [2, 3], 3]}, "v2": {"values": ["a", "b", "c'"]}}}},
    {"source": _at("tests/test_grid_search.py::test_grid_search_constant_val_is_propagated"),
     "config": {"method": "grid", "parameters": {"v1": {"values": ["a", "b", "c'"]},
                                                 "v2": {"value": 1}}}},
    {"source": _at("tests/test_grid_search.py::test_grid_search_constant_vals_only"),
     "config": {"method": "grid", "parameters": {"v1": {"value": "a"}, "v2": {"value": "b"}}}},
    {"source": _at("tests/test_grid_search.py::test_grid_search_dict_val_is_propagated"),
     "config": {"method": "grid", "parameters": {
         "v1": {"values": ["a", "b", "c'"]},
         "v2": {"values": [{"a": "b"}, {"c": "d", "b": "g"}, {"e": {"f": "g"}}, {"a": "b"},
                           {"b": "g", "c": "d"}]}}}},
    {"source": _at("tests/test_grid_search.py::test_grid_search_anaconda1_order"),
     "config": {"method": "grid", "parameters": {"v1": {"values": ["a", "b", "c", "a"]},
                                                 "v2": {"values": [1, 2, 3]}}}},
    {"source": _at("tests/test_grid_search.py::test_int_uniform_bounded_grid_search"),
     "config": {"method": "grid", "parameters": {
         "v1": {"distribution": "int_uniform", "min": -52, "max": 10}, "v2": {"value": "test"}}}},
    {"source": _at("tests/test_grid_search.py::test_q_uniform_bounded_grid_search"),
     "config": {"method": "grid", "parameters": {
         "v1": {"distribution": "q_uniform", "min": -9.211, "max": 23.23, "q": 2.341},
         "v2": {"value": "test"}}}},
    {"source": _at("tests/test_grid_search.py::test_nested_grid_search_advances"),
     "config": {"method": "grid", "metric": {"goal": "minimize", "name": "loss"},
                "command": ["${env}", "python3", "-m", "hellowsweep"], "project": "sweep_test",
                "parameters": {"p1": {"values": ["a", "b", "c"]},
                               "p2": {"parameters": {"n1": {"values": [0.01, 0.001]},
                                                     "n2": {"value": 0.9},
                                                     "n3": {"values": [1, 2, 3]}}}},
                "description": "hellosweep: A sample program for getting started with wandb "
                               "sweeps."}},
    {"source": _at("tests/test_grid_search.py::test_grid_search_caches_repeated_yaml_hash_values"),
     "config": {"method": "grid", "parameters": {
         "cols": {"values": [[f"col_{i}" for i in range(50)], ["next"]]}}}},
    {"source": _at("tests/test_grid_search.py::test_grid_search_matches_integer_float_values"),
     "config": {"method": "grid", "parameters": {"v1": {"values": [3000000, "next"]},
                                                 "v2": {"value": "test"}}}},
    {"source": _at("tests/test_grid_search.py::test_grid_search_keeps_bool_and_int_values_"
                   "distinct"),
     "config": {"method": "grid", "parameters": {"v1": {"values": [True, 1]},
                                                 "v2": {"value": "test"}}}},
    {"source": _at("tests/test_grid_search.py::test_grid_search_keeps_list_and_tuple_values_"
                   "distinct"),
     "config": {"method": "grid", "parameters": {"v1": {"values": [[2, 3], [2, 3]]},
                                                 "v2": {"value": "test"}}}},
    {"source": _at("tests/test_grid_search.py::test_grid_search_matches_dict_values_regardless"
                   "_of_key_order"),
     "config": {"method": "grid", "parameters": {
         "v1": {"values": [{"a": 1, "b": 2}, {"a": 3, "b": 4}]}, "v2": {"value": "test"}}}},
    {"source": _at("tests/test_grid_search.py::test_dict_valued_param_with_injected_key"),
     "config": {"method": "grid", "parameters": {"env_params": {"values": [
         {"env_id": "Env-v0", "max_steps": 1000}, {"env_id": "Env-v1", "max_steps": 2000}]}}}},
    {"source": _at("tests/test_grid_search.py::test_mixed_scalar_and_dict_params"),
     "config": {"method": "grid", "parameters": {
         "algorithm": {"value": "SAC"},
         "env_params": {"values": [{"env_id": "Env-v0", "max_steps": 1000},
                                   {"env_id": "Env-v1", "max_steps": 2000}]}}}},
    # --- tests/test_hyperband_stopping.py
    {"source": _at("tests/test_hyperband_stopping.py::test_hyperband_min_iter_bands"),
     "config": _hyperband({"min_iter": 3, "eta": 3})},
    {"source": _at("tests/test_hyperband_stopping.py::test_hyperband_min_iter_bands_max"),
     "config": _hyperband({"min_iter": 3, "eta": 3}, goal="maximize")},
    {"source": _at("tests/test_hyperband_stopping.py::test_hyperband_max_iter_bands"),
     "config": _hyperband({"max_iter": 81, "eta": 3, "s": 3})},
    {"source": _at("tests/test_hyperband_stopping.py::test_init_from_max_iter"),
     "config": _hyperband({"max_iter": 18, "eta": 3, "s": 2})},
    {"source": _at("tests/test_hyperband_stopping.py::test_single_run"),
     "config": _hyperband({"max_iter": 18, "eta": 3, "s": 2, "strict": False})},
    {"source": _at("tests/test_hyperband_stopping.py::test_2runs_band1_pass"),
     "config": _hyperband({"max_iter": 18, "eta": 3, "s": 2, "strict": False})},
    {"source": _at("tests/test_hyperband_stopping.py::test_5runs_band1_stop_2"),
     "config": _hyperband({"max_iter": 5, "eta": 2, "s": 2})},
    {"source": _at("tests/test_hyperband_stopping.py::test_5runs_band1_stop_2_1stnoband"),
     "config": _hyperband({"max_iter": 5, "eta": 2, "s": 2})},
    {"source": _at("tests/test_hyperband_stopping.py::test_eta_3"),
     "config": _hyperband({"max_iter": 9, "eta": 3, "s": 2, "strict": False})},
    {"source": _at("tests/test_hyperband_stopping.py::test_eta_3_max"),
     "config": _hyperband({"max_iter": 9, "eta": 3, "s": 2, "strict": False}, goal="maximize")},
    {"source": _at("tests/test_hyperband_stopping.py::test_hyperband_runs_with_nan_metrics"),
     "config": {"method": "bayes", "metric": {"goal": "minimize", "name": "overall_eval_loss"},
                "parameters": NAN_METRICS_PARAMS,
                "early_terminate": {"s": 2, "eta": 3, "type": "hyperband", "max_iter": 300}}},
    {"source": _at("tests/test_hyperband_stopping.py::test_hyperband_extensive_relaxed"),
     "config": _hyperband({"min_iter": 30, "eta": 1.5, "strict": False}, goal="maximize",
                          method="bayes", parameters=HYPERDATA_PARAMS)},
    {"source": _at("tests/test_hyperband_stopping.py::test_hyperband_extensive_strict"),
     "config": _hyperband({"min_iter": 30, "eta": 1.5, "strict": True}, goal="maximize",
                          method="bayes", parameters=HYPERDATA_PARAMS)},
    {"source": _at("src/sweeps/hyperband_stopping.py::hyperband_stop_runs (docstring)"),
     "config": _hyperband({"max_iter": 5, "eta": 2, "s": 2})},
    # --- tests/test_params.py
    {"source": _at("tests/test_params.py::test_param_dict_default_values"),
     "config": {"method": "grid", "metric": {"name": "loss", "goal": "minimize"},
                "parameters": {"a": {"parameters": {"b": {"min": 0, "max": 1}}}}}},
    {"source": _at("tests/test_params.py::test_hyperparameterset_from_config"),
     "config": {"method": "grid", "metric": {"name": "loss", "goal": "minimize"},
                "parameters": {"a": {"parameters": {"b": {"value": 1}, "c": {"parameters": {
                    "d": {"value": 1}}}}}}}},
    {"source": _at("tests/test_params.py::test_hyperparameterset_normalize_runs"),
     "config": {"method": "grid", "metric": {"name": "loss", "goal": "minimize"},
                "parameters": {"a": {"parameters": {"b": {"values": [1, 100]}, "c": {
                    "parameters": {"d": {"value": 1}}}}}}}},
    # --- tests/test_random_search.py
    *({"source": _at(f"tests/test_random_search.py::test_rand_categorical[{i}]"),
       "config": _random_v1({"values": values, "probabilities": probs})}
      for i, (values, probs) in enumerate([
          (list(range(5)), [0.2, 0.2, 0.2, 0.2, 0.2]), (list(range(3)), [0.5, 0.0, 0.5]),
          (list(range(5)), [0.1, 0.25, 0.15, 0.2, 0.3])])),
    {"source": _at("tests/test_random_search.py::test_rand_uniform"),
     "config": _random_v1({"min": 3.0, "max": 5.0})},
    {"source": _at("tests/test_random_search.py::test_rand_normal"),
     "config": _random_v1({"distribution": "normal"})},
    {"source": _at("tests/test_random_search.py::test_rand_lognormal"),
     "config": _random_v1({"distribution": "log_normal", "mu": 2, "sigma": 3})},
    {"source": _at("tests/test_random_search.py::test_rand_loguniform"),
     "config": {"method": "random", "parameters": {"v2": {
         "min": math.log(5.0), "max": math.log(100), "distribution": "log_uniform"}}}},
    {"source": _at("tests/test_random_search.py::test_rand_loguniform_values"),
     "config": {"method": "random", "parameters": {"v2": {
         "min": 5.0, "max": 100, "distribution": "log_uniform_values"}}}},
    {"source": _at("tests/test_random_search.py::test_rand_inv_loguniform"),
     "config": {"method": "random", "parameters": {"v2": {
         "min": math.log(1 / 1e20), "max": math.log(1 / 1e-15),
         "distribution": "inv_log_uniform"}}}},
    {"source": _at("tests/test_random_search.py::test_rand_inv_loguniform_values"),
     "config": {"method": "random", "parameters": {"v2": {
         "min": 1e-15, "max": 1e20, "distribution": "inv_log_uniform_values"}}}},
    *({"source": _at(f"tests/test_random_search.py::test_rand_q_lognormal[{q}]"),
       "config": _random_v1({"distribution": "q_log_normal", "mu": 2, "sigma": 2, "q": q})}
      for q in (0.1, 1, 10)),
    *({"source": _at(f"tests/test_random_search.py::test_rand_q_normal[{q}]"),
       "config": _random_v1({"distribution": "q_normal", "mu": 4, "sigma": 2, "q": q})}
      for q in (0.1, 1, 10)),
    *({"source": _at(f"tests/test_random_search.py::test_rand_q_uniform[{q}]"),
       "config": _random_v1({"distribution": "q_uniform", "min": 0, "max": 100, "q": q})}
      for q in (0.1, 1, 10)),
    *({"source": _at(f"tests/test_random_search.py::test_rand_q_loguniform_values[{q}]"),
       "config": _random_v1({"distribution": "q_log_uniform_values", "min": 0.1, "max": 100,
                             "q": q})}
      for q in (0.1, 1, 10)),
    *({"source": _at(f"tests/test_random_search.py::test_rand_q_loguniform[{q}]"),
       "config": _random_v1({"distribution": "q_log_uniform", "min": math.log(0.1),
                             "max": math.log(100), "q": q})}
      for q in (0.1, 1, 10)),
    {"source": _at("tests/test_random_search.py::test_rand_q_beta[0.1]"),
     "config": _random_v1({"distribution": "q_beta", "a": 2, "b": 5, "q": 0.1})},
    {"source": _at("tests/test_random_search.py::test_rand_beta"),
     "config": _random_v1({"distribution": "beta", "a": 2, "b": 5})},
    # --- tests/test_schema.py
    {"source": _at("tests/test_schema.py::test_hyperband_missing_eta_imputed"), "config": DEAM},
    {"source": _at("tests/test_schema.py::test_hyperband_missing_eta_imputed_incremental"),
     "config": {**DEAM, "early_terminate": {"min_iter": 3, "type": "hyperband", "eta": 3}}},
    {"source": _at("tests/test_schema.py::test_hyperband_incremental_corrects_goal"),
     "config": {**DEAM, "metric": {"name": "val/loss"}}},
    # --- tests/test_validation.py
    {"source": _at("tests/test_validation.py::test_minmax_type_inference"),
     "config": {"method": "random",
                "parameters": {"a": {"min": 0, "max": 1, "distribution": "uniform"}}}},
    *({"source": _at(f"tests/test_validation.py::test_controller[{kind}]"),
       "config": {"controller": {"type": kind}, "method": "random",
                  "parameters": {"a": {"values": [1, 2, 3, 4]}}}}
      for kind in ("cloud", "local")),
    *({"source": _at(f"tests/test_validation.py::test_param_dict[{method}]"),
       "config": {"method": method, "metric": {"name": "loss", "goal": "minimize"},
                  "parameters": {"a": {"parameters": {"b": {"values": [1, 2]},
                                                      "c": {"parameters": {"d": {"value": 1}}}}}}}}
      for method in ("bayes", "grid", "random")),
    *({"source": _at(f"tests/test_validation.py::test_param_dict[{method}] (second config)"),
       "config": {"method": method, "metric": {"name": "loss", "goal": "minimize"},
                  "parameters": {"a": {"parameters": {"b": {"value": 1},
                                                      "c": {"parameters": {"d": {"value": 2}}}}},
                                 "b": {"values": [2, 3]}}}}
      for method in ("bayes", "grid", "random")),
    *({"source": _at(f"tests/test_validation.py::test_that_run_cap_validation_works_for_min_value"
                     f"[{cap}]"),
       "config": {"method": "random", "parameters": {"a": {"values": [1, 2, 3, 4]}},
                  "run_cap": cap}}
      for cap in (1, 300)),
    # W&B's library reports these v1 forms as deprecated (test_that_old_distributions_warn);
    # its docs and its server still take them, and so does wssweep, with a note.
    *({"source": _at(f"tests/test_validation.py::test_that_old_distributions_warn[{dist}]"),
       "config": {"method": "random", "parameters": {"a": {"min": 1, "max": 2,
                                                           "distribution": dist}}}}
      for dist in ("log_uniform", "q_log_uniform", "inv_log_uniform")),
    # --- examples/
    {"source": _at("examples/sweep-bayes.yaml"),
     "config": {"description": "sweep example using bayes search", "program": "train.py",
                "project": "sweeps-examples", "method": "bayes",
                "metric": {"name": "loss_metric", "goal": "minimize"},
                "parameters": EXAMPLE_PARAMS}},
    {"source": _at("examples/sweep-grid.yaml"),
     "config": {"description": "sweep example using grid search", "program": "train.py",
                "project": "sweeps-examples", "method": "grid",
                "metric": {"name": "loss_metric", "goal": "minimize"},
                "parameters": EXAMPLE_PARAMS}},
    {"source": _at("examples/local-controller/sweep-local-bayes.yaml"),
     "config": {"description": "sweep examples using local controller and bayes",
                "program": "train-local.py", "project": "sweeps-examples", "method": "bayes",
                "controller": {"type": "local"},
                "metric": {"name": "loss_metric", "goal": "minimize"},
                "parameters": {**EXAMPLE_PARAMS, "epochs": {"value": 20},
                               "sleep": {"value": 2}}}},
    {"source": _at("examples/local-controller/sweep-local-hyperband.yaml"),
     "config": {"description": "sweep examples using local controller and hyperband",
                "program": "train-local.py", "project": "sweeps-examples", "method": "grid",
                "controller": {"type": "local"},
                "metric": {"name": "loss_metric", "goal": "minimize"},
                "early_terminate": {"type": "hyperband", "max_iter": 10, "s": 2, "eta": 3},
                "parameters": {**EXAMPLE_PARAMS, "epochs": {"value": 20},
                               "sleep": {"value": 2}}}},
    {"source": _at("examples/nested-params/sweep-nested-cli.yaml"),
     "config": {"description": "sweep examples with nested parameters using cli",
                "program": "train-nested-cli.py", "project": "sweeps-examples",
                "method": "grid", "metric": {"name": "loss", "goal": "minimize"},
                "parameters": {"batch_size": {"values": [32, 64]},
                               "optimizer": {"parameters": {
                                   "lr": {"values": [0.001, 0.0001]},
                                   "nadam": {"parameters": {"beta": {"values": [0.9, 0.95]}}}}}}}},
    {"source": _at("examples/launch/sweep-launch-jobs.yaml"),
     "config": {"description": "sweep examples using launch jobs",
                "job": "launch-test/wandb-launch-sweeps/job-source-wandb-launch-sweeps-examples"
                       "_launch-jobs_train-launch-jobs.py:v0",
                "program": "train-launch-jobs.py", "project": "wandb-launch-sweeps",
                "method": "bayes", "metric": {"name": "loss_metric", "goal": "minimize"},
                "parameters": EXAMPLE_PARAMS}},
    # --- docs.wandb.ai sweep pages
    {"source": f"{DOCS}/define-sweep-configuration (YAML: program, name, method, metric, "
               "parameters)",
     "config": {"program": "train.py", "name": "sweepdemo", "method": "bayes",
                "metric": {"goal": "minimize", "name": "validation_loss"},
                "parameters": {"learning_rate": {"min": 0.0001, "max": 0.1},
                               "batch_size": {"values": [16, 32, 64]},
                               "epochs": {"values": [5, 10, 15]},
                               "optimizer": {"values": ["adam", "sgd"]}}}},
    {"source": f"{DOCS}/define-sweep-configuration (nested parameters)",
     "config": {"program": "train.py", "method": "random",
                "metric": {"goal": "minimize", "name": "validation_loss"},
                "parameters": {"optimizer": {"parameters": {
                    "learning_rate": {"values": [0.01, 0.001]},
                    "momentum": {"value": 0.9}}}}}},
    {"source": f"{DOCS}/sweep-config-keys (early_terminate: hyperband, min_iter)",
     "config": {"program": "train.py", "method": "random",
                "metric": {"name": "validation_loss", "goal": "minimize"},
                "early_terminate": {"type": "hyperband", "min_iter": 3},
                "parameters": {"learning_rate": {"min": 0.0001, "max": 0.1}}}},
    {"source": f"{DOCS}/sweep-config-keys (early_terminate: hyperband, max_iter and s)",
     "config": {"program": "train.py", "method": "random",
                "metric": {"name": "validation_loss", "goal": "minimize"},
                "early_terminate": {"type": "hyperband", "max_iter": 27, "s": 2},
                "parameters": {"learning_rate": {"min": 0.0001, "max": 0.1}}}},
    {"source": f"{DOCS}/sweep-config-keys (metric target)",
     "config": {"program": "train.py", "method": "random",
                "metric": {"name": "val_loss", "goal": "minimize", "target": 0.1},
                "parameters": {"learning_rate": {"min": 0.0001, "max": 0.1}}}},
    {"source": f"{DOCS}/sweep-config-keys (parameters: distributions)",
     "config": {"program": "train.py", "method": "random",
                "metric": {"name": "val_loss", "goal": "minimize"},
                "parameters": {
                    "learning_rate": {"distribution": "uniform", "min": 0, "max": 0.1},
                    "batch_size": {"distribution": "q_log_uniform_values", "max": 256,
                                   "min": 32, "q": 8},
                    "dropout": {"values": [0.3, 0.4, 0.5]},
                    "epochs": {"value": 1}}}},
    {"source": f"{DOCS}/sweep-config-keys (command)",
     "config": {"program": "train.py", "method": "grid",
                "command": ["${env}", "${interpreter}", "${program}", "${args}"],
                "parameters": {"optimizer": {"values": ["adam", "sgd"]}}}},
    {"source": f"{DOCS}/sweep-config-keys (run_cap, entity, project)",
     "config": {"program": "train.py", "method": "bayes", "entity": "my-team",
                "project": "my-project", "run_cap": 20,
                "metric": {"name": "val_loss", "goal": "minimize"},
                "parameters": {"learning_rate": {"distribution": "log_uniform_values",
                                                 "min": 0.0001, "max": 0.1}}}},
    {"source": f"{DOCS}/sweep-config-keys (distribution: constant, as W&B writes it back)",
     "config": {"method": "grid", "parameters": {
         "epochs": {"distribution": "constant", "value": 5},
         "optimizer": {"distribution": "categorical", "values": ["adam", "sgd"]}}}},
    {"source": f"{DOCS}/sweep-config-keys (distribution: inv_log_uniform_values)",
     "config": {"method": "bayes", "metric": {"name": "val_loss", "goal": "minimize",
                                              "impute": "worst"},
                "parameters": {"weight_decay": {"distribution": "inv_log_uniform_values",
                                                "min": 1e-05, "max": 0.1}}}},
    {"source": f"{DOCS}/sweep-config-keys (distribution: q_log_normal, q_beta)",
     "config": {"method": "random", "parameters": {
         "hidden": {"distribution": "q_log_normal", "mu": 4, "sigma": 0.5, "q": 8},
         "keep": {"distribution": "q_beta", "a": 2, "b": 2, "q": 0.05}}}},
    {"source": f"{SCHEMA}#/properties (apiVersion, kind)",
     "config": {"apiVersion": "v1", "kind": "sweep", "method": "random",
                "parameters": {"a": {"values": [1, 2]}}}},
    {"source": f"{SCHEMA}#/definitions/hyperband_stopping (min_iter and max_iter, s: W&B uses "
               "max_iter)",
     "config": _hyperband({"min_iter": 2, "max_iter": 27, "s": 2})},
    {"source": f"{SCHEMA}#/definitions/param_quniform (q defaults to 1.0)",
     "config": _random_v1({"distribution": "q_uniform", "min": 0.5, "max": 7.5})},
    {"source": f"{SCHEMA}#/definitions/param_quniform (q: 1e-320, a positive number)",
     "config": _random_v1({"distribution": "q_uniform", "min": 0.25, "max": 0.75, "q": 1e-320})},
    {"source": f"{SCHEMA}#/definitions/param_uniform (min int, max float)",
     "config": _random_v1({"min": 0, "max": 2.5})},
    {"source": f"{SCHEMA}#/definitions/param_int_uniform (distribution given)",
     "config": _random_v1({"distribution": "int_uniform", "min": 2, "max": 8})},
    {"source": f"{SCHEMA}#/definitions/param_categorical_w_probabilities (grid-free, bayes)",
     "config": {"method": "bayes", "metric": {"name": "acc", "goal": "maximize"},
                "parameters": {"v1": {"values": ["a", "b"], "probabilities": [0.25, 0.75]}}}},
    {"source": f"{SCHEMA}#/definitions/param_lognormal (defaults mu 0, sigma 1)",
     "config": {"method": "bayes", "metric": {"name": "loss"},
                "parameters": {"v1": {"distribution": "log_normal"}}}},
    {"source": f"{SCHEMA}#/definitions/param_beta (defaults a 1, b 1)",
     "config": {"method": "bayes", "metric": {"name": "loss"},
                "parameters": {"v1": {"distribution": "beta"}}}},
    {"source": f"{SCHEMA}#/definitions/param_qnormal (default q 1.0)",
     "config": {"method": "bayes", "metric": {"name": "loss"},
                "parameters": {"v1": {"distribution": "q_normal", "mu": 10, "sigma": 3}}}},
    {"source": f"{SCHEMA}#/definitions/metric (impute_while_running: latest)",
     "config": {"method": "bayes", "metric": {"name": "loss", "impute": "latest",
                                              "impute_while_running": "latest"},
                "parameters": {"v1": {"min": 0.0, "max": 1.0}}}},
    {"source": f"{SCHEMA}#/properties/run_cap (random and bayes need none: they run until "
               "stopped)",
     "config": {"method": "bayes", "metric": {"name": "loss"},
                "parameters": {"v1": {"distribution": "q_log_uniform_values", "min": 1,
                                      "max": 1000, "q": 1}}}},
]

# INVALID entries: "key" is the key path the error must name (W&B's parameter names; the test
# renames parameters.<name> as it ports).
INVALID: list[dict[str, Any]] = [
    {"source": _at("tests/test_config.py::test_min_max_validation"), "key": "parameters.v1.max",
     "config": {"method": "random", "parameters": {"v1": {"max": 3, "min": 5},
                                                   "v2": {"min": 5, "max": 6}}}},
    {"source": _at("tests/test_config.py::test_negative_sigma_validation"),
     "key": "parameters.v1.sigma",
     "config": _random_v1({"mu": 0.1, "sigma": -0.1, "distribution": "normal"})},
    {"source": _at("tests/test_config.py::test_missing_parameters_section"), "key": "parameters",
     "config": {"method": "random"}},
    {"source": _at("tests/test_config.py::test_wrong_prob_length"),
     "key": "parameters.v1.probabilities",
     "config": _random_v1({"values": [1, 2, 3], "probabilities": [0.1, 0.2, 0.3, 0.4]})},
    {"source": _at("tests/test_config.py::test_irregular_probs"),
     "key": "parameters.v1.probabilities",
     "config": _random_v1({"values": [1, 2, 3], "probabilities": [0.1, 0.2, 0.3]})},
    {"source": _at("tests/test_config.py::test_categorical_prob_grid"),
     "key": "parameters.v1.distribution",
     "config": {"method": "grid", "parameters": {"v1": {"values": [1, 2, 3],
                                                        "probabilities": [0.2, 0.2, 0.6]}}}},
    {"source": _at("tests/test_config.py::test_metrics_multi_objective_with_custom_method "
                   "(W&B Launch: refused here)"), "key": "metrics",
     "config": {"method": "custom", "metrics": [{"name": "loss", "goal": "minimize"},
                                                {"name": "accuracy", "goal": "maximize"}],
                "parameters": V123}},
    {"source": _at("tests/test_config.py::test_metrics_requires_custom_method"), "key": "metrics",
     "config": {"method": "bayes", "metrics": [{"name": "loss", "goal": "minimize"},
                                               {"name": "accuracy", "goal": "maximize"}],
                "parameters": V123}},
    {"source": _at("tests/test_config.py::test_metric_and_metrics_mutually_exclusive"),
     "key": "metrics",
     "config": {"method": "custom", "metric": {"name": "loss"},
                "metrics": [{"name": "loss", "goal": "minimize"},
                            {"name": "accuracy", "goal": "maximize"}], "parameters": V123}},
    {"source": _at("tests/test_config.py::test_metrics_requires_at_least_two"), "key": "metrics",
     "config": {"method": "custom", "metrics": [{"name": "loss", "goal": "minimize"}],
                "parameters": V123}},
    {"source": _at("tests/test_config.py::test_metrics_filled_with_defaults (W&B Launch)"),
     "key": "metrics",
     "config": {"method": "custom", "metrics": [{"name": "loss"}, {"name": "accuracy"}],
                "parameters": V123}},
    {"source": _at("tests/test_config.py::test_fill_validate_metrics_rejects_non_list"),
     "key": "metrics",
     "config": {"method": "custom", "metrics": "not-a-list", "parameters": V123}},
    {"source": _at("tests/test_config.py::test_fill_validate_metrics_rejects_non_dict_items"),
     "key": "metrics",
     "config": {"method": "custom", "metrics": [{"name": "loss"}, "not-a-dict"],
                "parameters": V123}},
    {"source": _at("tests/test_config.py::test_scheduler_wandb_engine_valid (W&B Launch)"),
     "key": "scheduler",
     "config": {"method": "bayes", "scheduler": {"engine": "wandb", "source": "scheduler.py",
                                                 "optimizer": "build_study",
                                                 "search_space": "search_space"},
                "parameters": V123}},
    *({"source": _at(f"tests/test_config.py::test_scheduler_unavailable_engine_raises[{e}]"),
       "key": "scheduler",
       "config": {"method": "bayes", "scheduler": {"engine": e, "source": "scheduler.py"},
                  "parameters": V123}} for e in ("optuna", "ax")),
    {"source": _at("tests/test_config.py::test_scheduler_invalid_engine_rejected"),
     "key": "scheduler",
     "config": {"method": "bayes", "scheduler": {"engine": "not-a-real-engine"},
                "parameters": V123}},
    {"source": _at("tests/test_config.py::test_scheduler_missing_required_field"),
     "key": "scheduler",
     "config": {"method": "bayes", "scheduler": {"source": "scheduler.py"}, "parameters": V123}},
    {"source": _at("tests/test_config.py::test_scheduler_only_engine_required (W&B Launch)"),
     "key": "scheduler",
     "config": {"method": "bayes", "scheduler": {"engine": "wandb"}, "parameters": V123}},
    {"source": _at("tests/test_config.py::test_scheduler_engine_wandb_requires_method"),
     "key": "method",
     "config": {"method": "custom", "parameters": V123}},
    {"source": _at("tests/test_config.py::test_scheduler_and_early_terminate_mutually_exclusive"),
     "key": "scheduler",
     "config": {"method": "bayes", "scheduler": {"engine": "wandb"},
                "early_terminate": {"type": "hyperband", "min_iter": 3}, "parameters": V123}},
    {"source": _at("tests/test_config.py::test_scheduler_and_controller_mutually_exclusive"),
     "key": "scheduler",
     "config": {"method": "bayes", "scheduler": {"engine": "wandb"},
                "controller": {"type": "local"}, "parameters": V123}},
    {"source": _at("tests/test_config.py::"
                   "test_parameters_not_required_when_scheduler_defines_search_space"),
     "key": "scheduler",
     "config": {"method": "bayes", "scheduler": {"engine": "wandb", "source": "scheduler.py",
                                                 "search_space": "search_space"}}},
    {"source": _at("tests/test_config.py::test_parameters_still_required_without_scheduler"),
     "key": "parameters", "config": {"method": "bayes", "metric": {"name": "loss"}}},
    {"source": _at("tests/test_hyperband_stopping.py::test_hyperband_runs_with_bad_config"),
     "key": "early_terminate",
     "config": {"method": "bayes", "metric": {"goal": "minimize", "name": "overall_eval_loss"},
                "early_terminate": "hyperband", "parameters": ABC}},
    {"source": _at("tests/test_params.py::test_hyperparameterset_from_config (b: 42)"),
     "key": "parameters.a.parameters.b",
     "config": {"method": "grid", "metric": {"name": "loss", "goal": "minimize"},
                "parameters": {"a": {"parameters": {"b": 42}}}}},
    {"source": _at("tests/test_schema.py::test_invalid_metric"), "key": "metric",
     "config": {"method": "grid", "metric": "{'goal': 'maximize', 'name': 'val/loss'}",
                "parameters": {"a": {"values": [1, 2, 3, 4]}}}},
    *({"source": _at(f"tests/test_validation.py::test_validation_disable[{m}]"),
       "key": "metric.goal",
       "config": {"metric": {"name": "loss", "goal": "minimise"}, "method": m,
                  "parameters": {"v1": {"values": ["a", "b", "c"]}}}}
      for m in ("bayes", "grid", "random")),
    {"source": _at("tests/test_validation.py::test_validation_not_enough_params"),
     "key": "parameters", "config": {"method": "random", "parameters": {}}},
    {"source": _at("tests/test_validation.py::test_minmax_type_inference (int_uniform, floats)"),
     "key": "parameters.a.min",
     "config": {"method": "random",
                "parameters": {"a": {"min": 0.0, "max": 1.0, "distribution": "int_uniform"}}}},
    {"source": _at("tests/test_validation.py::test_controller[invalid]"),
     "key": "controller.type",
     "config": {"controller": {"type": "invalid"}, "method": "random",
                "parameters": {"a": {"values": [1, 2, 3, 4]}}}},
    {"source": _at("tests/test_validation.py::test_sweepconfig_no_method_baseline_validation"),
     "key": "method", "config": {"parameters": {"a": {"values": [1, 2, 3, 4]}}}},
    {"source": _at("tests/test_validation.py::test_invalid_early_stopping (bayes, no metric)"),
     "key": "metric", "config": {"method": "bayes",
                                 "parameters": {"v1": {"values": ["a", "b", "c"]}}}},
    {"source": _at("tests/test_validation.py::test_invalid_early_stopping (type: invalid type)"),
     "key": "early_terminate.type",
     "config": {"method": "bayes", "metric": {"name": "loss", "goal": "minimize"},
                "early_terminate": {"type": "invalid type"},
                "parameters": {"v1": {"values": ["a", "b", "c"]}}}},
    {"source": _at("tests/test_validation.py::test_invalid_minmax_with_no_sweepconfig_validation"),
     "key": "parameters.a.max",
     "config": {"method": "random", "parameters": {"a": {"max": 0, "min": 1}}}},
    *({"source": _at("tests/test_validation.py::"
                     f"test_that_minmax_validation_fails_on_loguniform_values_types[{dist}]"),
       "key": "parameters.a.max",
       "config": {"method": "random", "parameters": {"a": {"min": 2, "max": 1,
                                                           "distribution": dist}}}}
      for dist in ("log_uniform_values", "q_log_uniform_values", "inv_log_uniform_values")),
    *({"source": _at("tests/test_validation.py::test_that_run_cap_validation_works_for_min_value"
                     f"[{cap!r}]"),
       "key": "run_cap",
       "config": {"method": "random", "parameters": {"a": {"values": [1, 2, 3, 4]}},
                  "run_cap": cap}}
      for cap in (-1, 0, -0.3, 5.1, "1")),
    # --- rules of W&B's schema (src/sweeps/config/schema.json)
    {"source": f"{SCHEMA}#/definitions/param_uniform (additionalProperties: false)",
     "key": "parameters.v1.q",
     "config": _random_v1({"distribution": "uniform", "min": 0, "max": 1, "q": 0.5})},
    {"source": f"{SCHEMA}#/definitions/param_normal (additionalProperties: false)",
     "key": "parameters.v1.min",
     "config": _random_v1({"distribution": "normal", "min": 0, "max": 1})},
    {"source": f"{SCHEMA}#/definitions/param_quniform (q: exclusiveMinimum 0)",
     "key": "parameters.v1.q",
     "config": _random_v1({"distribution": "q_uniform", "min": 0, "max": 1, "q": 0})},
    {"source": f"{SCHEMA}#/definitions/param_qloguniform_v2 (min: exclusiveMinimum 0)",
     "key": "parameters.v1.min",
     "config": _random_v1({"distribution": "q_log_uniform_values", "min": 0, "max": 10})},
    {"source": f"{SCHEMA}#/definitions/param_beta (a: minimum 0)", "key": "parameters.v1.a",
     "config": _random_v1({"distribution": "beta", "a": -1, "b": 2})},
    {"source": f"{SCHEMA}#/definitions/param_categorical (values: minItems 1)",
     "key": "parameters.v1.values", "config": _random_v1({"values": []})},
    {"source": f"{SCHEMA}#/definitions/param_categorical_w_probabilities (minimum 0)",
     "key": "parameters.v1.probabilities",
     "config": _random_v1({"values": [1, 2], "probabilities": [1.5, -0.5]})},
    {"source": f"{SCHEMA}#/definitions/parameter (no schema with value and values)",
     "key": "parameters.v1", "config": _random_v1({"value": 1, "values": [1, 2]})},
    {"source": f"{SCHEMA}#/definitions/parameter (distribution enum)",
     "key": "parameters.v1.distribution",
     "config": _random_v1({"distribution": "lognormal", "mu": 1})},
    {"source": f"{SCHEMA}#/definitions/param_dict (parameters: minProperties 1)",
     "key": "parameters.v1.parameters", "config": _random_v1({"parameters": {}})},
    {"source": f"{SCHEMA}#/definitions/param_dict (additionalProperties: false)",
     "key": "parameters.v1.values",
     "config": _random_v1({"parameters": {"a": {"value": 1}}, "values": [1]})},
    {"source": f"{SCHEMA}#/definitions/parameters (propertyNames pattern)",
     "key": "parameters.a b", "config": {"method": "random",
                                         "parameters": {"a b": {"values": [1, 2]}}}},
    {"source": f"{SCHEMA}#/definitions/metric (required: name)", "key": "metric.name",
     "config": {"method": "random", "metric": {"goal": "maximize"}, "parameters": ABC}},
    {"source": f"{SCHEMA}#/definitions/metric (impute enum)", "key": "metric.impute",
     "config": {"method": "bayes", "metric": {"name": "loss", "impute": "mean"},
                "parameters": {"v1": {"min": 0.0, "max": 1.0}}}},
    {"source": f"{SCHEMA}#/definitions/metric (impute_while_running enum)",
     "key": "metric.impute_while_running",
     "config": {"method": "bayes", "metric": {"name": "loss", "impute_while_running": "always"},
                "parameters": {"v1": {"min": 0.0, "max": 1.0}}}},
    {"source": f"{SCHEMA}#/definitions/metric (target: number)", "key": "metric.target",
     "config": {"method": "random", "metric": {"name": "loss", "target": "low"},
                "parameters": ABC}},
    {"source": f"{SCHEMA}#/definitions/metric (additionalProperties: false)",
     "key": "metric.summary",
     "config": {"method": "random", "metric": {"name": "loss", "summary": "max"},
                "parameters": ABC}},
    {"source": f"{SCHEMA}#/definitions/hyperband_stopping (eta: exclusiveMinimum 1)",
     "key": "early_terminate.eta", "config": _hyperband({"min_iter": 3, "eta": 1})},
    {"source": f"{SCHEMA}#/definitions/hyperband_stopping (min_iter: minimum 1)",
     "key": "early_terminate.min_iter", "config": _hyperband({"min_iter": 0})},
    {"source": f"{SCHEMA}#/definitions/hyperband_stopping (anyOf: max_iter needs s)",
     "key": "early_terminate.s", "config": _hyperband({"max_iter": 27})},
    {"source": f"{SCHEMA}#/definitions/hyperband_stopping (anyOf: min_iter or max_iter)",
     "key": "early_terminate", "config": _hyperband({"eta": 3})},
    {"source": f"{SCHEMA}#/definitions/hyperband_stopping (max_iter: integer)",
     "key": "early_terminate.max_iter", "config": _hyperband({"max_iter": 27.5, "s": 2})},
    {"source": f"{SCHEMA}#/definitions/hyperband_stopping (strict: boolean)",
     "key": "early_terminate.strict", "config": _hyperband({"min_iter": 3, "strict": "yes"})},
    {"source": f"{SCHEMA}#/definitions/hyperband_stopping (additionalProperties: false)",
     "key": "early_terminate.extra_key",
     "config": _hyperband({"min_iter": 3, "extra_key": 1234})},
    {"source": _at("src/sweeps/hyperband_stopping.py (bands must be at least one: max_iter < eta)"),
     "key": "early_terminate.max_iter", "config": _hyperband({"max_iter": 2, "s": 2, "eta": 3})},
    {"source": _at("src/sweeps/hyperband_stopping.py (range(s): s an integer)"),
     "key": "early_terminate.s", "config": _hyperband({"max_iter": 27, "s": 2.5})},
    {"source": _at("src/sweeps/hyperband_stopping.py (requires a metric section)"),
     "key": "metric",
     "config": {"method": "grid", "early_terminate": {"type": "hyperband", "min_iter": 3},
                "parameters": ABC}},
    {"source": _at("src/sweeps/grid_search.py (grid takes categorical, constant, int_uniform, "
                   "q_uniform)"),
     "key": "parameters.v1.distribution",
     "config": {"method": "grid", "parameters": {"v1": {"distribution": "normal"}}}},
    {"source": _at("src/sweeps/bayes_search.py (at least one searchable parameter)"),
     "key": "parameters",
     "config": {"method": "bayes", "metric": {"name": "loss"},
                "parameters": {"v1": {"value": 1}}}},
    {"source": f"{SCHEMA}#/properties/method (enum)", "key": "method",
     "config": {"method": "hyperband", "parameters": ABC}},
    {"source": f"{SCHEMA}#/properties/controller (required: type)", "key": "controller.type",
     "config": {"method": "random", "controller": {}, "parameters": ABC}},
    {"source": f"{SCHEMA}#/properties/command (type: array)", "key": "command",
     "config": {"method": "random", "command": "python train.py", "parameters": ABC}},
    {"source": f"{SCHEMA}#/properties/program (type: string)", "key": "program",
     "config": {"method": "random", "program": ["train.py"], "parameters": ABC}},
    {"source": f"{SCHEMA}#/properties/kind (enum: sweep)", "key": "kind",
     "config": {"method": "random", "kind": "job", "parameters": ABC}},
    {"source": f"{SCHEMA} (additionalProperties: false)", "key": "epochs",
     "config": {"method": "random", "epochs": 5, "parameters": ABC}},
]


# --- wandb/examples: published example sweeps, their YAML as published (comments dropped)
EXAMPLES_REPO = "wandb/examples@5cab887"

EXAMPLE_YAML: dict[str, str] = {
    "colabs/pyg/pointnet-classification/sweep_config.yaml": """\
program: train.py
method: bayes
metric:
    name: Validation/Accuracy
    goal: maximize
parameters:
    batch_size:
        values: [8, 16, 32]
    sample_points:
        values: [512, 1024, 2048]
    set_abstraction_ratio_1:
        min: 0.1
        max: 0.9
    set_abstraction_radius_1:
        min: 0.1
        max: 0.5
    set_abstraction_ratio_2:
        min: 0.1
        max: 0.9
    set_abstraction_radius_2:
        min: 0.1
        max: 0.5
    dropout:
        min: 0.1
        max: 0.7
""",
    "examples/fastai/fastai-v1-examples/fastai1-simpsons/sweep.yaml": """\
program: train_sweep.py
method: bayes
metric:
  name: accuracy
  goal: maximize
parameters:
  epochs:
    distribution: constant
    value: 20
  dropout:
    distribution: uniform
    min: 0
    max: 1
  img_size:
    distribution: categorical
    values:
      - 64
      - 100
  one_cycle:
    distribution: categorical
    values:
      - True
      - False
  batch_size:
    distribution: categorical
    values:
      - 8
      - 16
      - 32
      - 64
  pretrained:
    distribution: categorical
    values:
      - True
      - False
  learning_rate:
    distribution: log_uniform
    min: -11
    max: -2
""",
    "examples/keras/keras-cnn-fashion/sweep-bayes-hyperband.yaml": """\
program: train.py
method: bayes
metric:
  goal: minimize
  name: val_loss
parameters:
  dropout:
    values: [0.15, 0.2, 0.25, 0.3, 0.4]
  hidden_layer_size:
    values: [96, 128, 148]
  layer_1_size:
    values: [10, 12, 14, 16, 18, 20]
  layer_2_size:
    values: [24, 28, 32, 36, 40, 44]
  learn_rate:
    values: [0.001, 0.01, 0.003]
  decay:
    values: [1e-5, 1e-6, 1e-7]
  momentum:
    values: [0.8, 0.9, 0.95]
  epochs:
    value: 27
early_terminate:
  type: hyperband
  s: 2
  eta: 3
  max_iter: 27
""",
    "examples/keras/keras-cnn-fashion/sweep-grid-hyperband.yaml": """\
program: train.py
method: grid
metric:
  goal: minimize
  name: val_loss
parameters:
  dropout:
    values: [0.15, 0.2, 0.25, 0.3, 0.4]
  hidden_layer_size:
    values: [96, 128, 148]
  layer_1_size:
    values: [10, 12, 14, 16, 18, 20]
  layer_2_size:
    values: [24, 28, 32, 36, 40, 44]
  learn_rate:
    values: [0.001, 0.01, 0.003]
  decay:
    values: [1e-5, 1e-6, 1e-7]
  momentum:
    values: [0.8, 0.9, 0.95]
  epochs:
    value: 27
early_terminate:
  type: hyperband
  s: 2
  eta: 3
  max_iter: 27
""",
    "examples/keras/keras-cnn-fashion/sweep-random-hyperband.yaml": """\
program: train.py
method: random
metric:
  goal: minimize
  name: val_loss
parameters:
  dropout:
    values: [0.15, 0.2, 0.25, 0.3, 0.4]
  hidden_layer_size:
    values: [96, 128, 148]
  layer_1_size:
    values: [10, 12, 14, 16, 18, 20]
  layer_2_size:
    values: [24, 28, 32, 36, 40, 44]
  learn_rate:
    values: [0.001, 0.01, 0.003]
  decay:
    values: [1e-5, 1e-6, 1e-7]
  momentum:
    values: [0.8, 0.9, 0.95]
  epochs:
    value: 27
early_terminate:
  type: hyperband
  s: 2
  eta: 3
  max_iter: 27
""",
    "examples/llama-cpp/sweep.yaml": """\
program: evaluate.py
method: random
metric:
  goal: maximize
  name: diff_score
parameters:
  model:
    distribution: categorical
    values:
      - codellama-13b-instruct.Q4_K_M.gguf
      - codellama-7b.Q5_K_S.gguf
      - mistral-7b-instruct-v0.1.Q5_K_M.gguf
      - gpt-3.5-turbo
  system_prompt:
    distribution: categorical
    values:
      - You're a Docker expert. Translate the following sentence to a simple docker command.
      - >-
        You'll be asked a question about Docker.  Your job is to convert this question to a
        succinct docker command.  Only provide a single command and limit your use of
        pipeing to other unix tools.
  temperature:
    distribution: uniform
    max: 0.6
    min: 0
""",
    "examples/minimal-hydra-example/wandb_sweep.yaml": """\
program: main.py
metric:
  name: val_loss
  goal: minimize
method: bayes
parameters:
  optimizer.config.learning_rate:
    min: !!float 1e-5
    max: 0.1
  experiment:
    values: [expt001, expt002]
  optimizer:
    values: [sgd, adagrad, adam]
command:
- ${env}
- ${interpreter}
- ${program}
- ${args_no_hyphens}
""",
    "examples/pytorch/pytorch-cnn-fashion/sweep-grid-hyperband.yaml": """\
program: train.py
method: grid
metric:
  goal: minimize
  name: loss
parameters:
  dropout:
    values: [0.1, 0.2, 0.4, 0.5, 0.7]
  channels_one:
    values: [10, 12, 14, 16, 18, 20]
  channels_two:
    values: [24, 28, 32, 36, 40, 44]
  learning_rate:
    values: [0.001, 0.005, 0.0005]
  epochs:
    value: 27
early_terminate:
  type: hyperband
  s: 2
  eta: 3
  max_iter: 27
""",
    "examples/wandb-sweeps/sweeps-boolean-parameters/sweep-bool.yaml": """\
program: train-bool.py
method: grid
parameters:
  optimizer:
    values: ["sgd", "adam"]
  flag1:
    values:
    - false
    - true
  flag2:
    values:
    - false
    - true
""",
    "examples/wandb-sweeps/sweeps-cross-validation/sweep-cross-validation.yaml": """\
method: random
metric:
  goal: maximize
  name: val_accuracy
parameters:
  batch_size:
    distribution: int_uniform
    max: 128
    min: 32
  epochs:
    distribution: constant
    value: 200
  node_size1:
    distribution: categorical
    values:
    - 64
    - 128
    - 256
  node_size2:
    distribution: categorical
    values:
    - 64
    - 128
    - 256
  node_size3:
    distribution: categorical
    values:
    - 64
    - 128
    - 256
  node_size4:
    distribution: categorical
    values:
    - 64
    - 128
    - 256
  node_size5:
    distribution: categorical
    values:
    - 64
    - 128
    - 256
  num_layers:
    distribution: categorical
    values:
    - 1
    - 2
    - 3
  optimizer:
    distribution: categorical
    values:
    - Adam
    - Adamax
    - Adagrad
program: train-cross-validation.py
""",
    "examples/launch/launch-sweeps/custom-scheduler/custom_job_sweep_config.yaml": """\
scheduler:
  job: <INSERT SCHEDULER JOB>
  settings:
    verbose_logging: True
    method: grid
job: wandb/sweep-jobs/job-fashion-MNIST-train:latest
parameters:
  param1:
    max: 10
    min: 0
""",
    "examples/launch/launch-sweeps/optuna-scheduler/optuna_config_basic.yaml": """\
description: A basic configuration for an Optuna scheduler
job: wandb/sweep-jobs/job-fashion-MNIST-train:latest
run_cap: 5
metric:
  name: epoch/val_loss
  goal: minimize
scheduler:
  job: wandb/sweep-jobs/job-optuna-sweep-scheduler:latest
  resource: local-container
  num_workers: 2
  settings:
    pruner:
      type: PercentilePruner
      args:
        percentile: 25.0
        n_warmup_steps: 10
parameters:
  learning_rate:
    min: 0.0001
    max: 1.0
""",
    "examples/launch/launch-sweeps/quickstart/launch_sweep_config.yaml": """\
description: sweeps on launch quickstart
method: grid
run_cap: 10
job: wandb/sweep-jobs/job-fashion-MNIST-train:latest
metric:
  name: epoch/val_loss
  goal: minimize
parameters:
  learning_rate:
    values: [0, 0.0001, 0.001, 0.01, 0.1, 1]
  epochs:
    max: 20
    min: 10
    distribution: int_uniform
scheduler:
  num_workers: 8
""",
}


def _example(path: str) -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE_YAML[path])


# Sweeps written as Python dicts in wandb/examples' notebooks and scripts (assembled where the
# notebook builds one up with parameters_dict.update).
EXAMPLE_DICTS: dict[str, dict[str, Any]] = {
    "colabs/boosting/Using_W&B_Sweeps_with_XGBoost.ipynb": {
        "method": "random", "metric": {"name": "accuracy", "goal": "maximize"},
        "parameters": {"booster": {"values": ["gbtree", "gblinear"]},
                       "max_depth": {"values": [3, 6, 9, 12]},
                       "learning_rate": {"values": [0.1, 0.05, 0.2]},
                       "subsample": {"values": [1, 0.5, 0.3]}}},
    "colabs/keras/Keras_param_opti_using_sweeps.ipynb": {
        "method": "bayes", "metric": {"name": "val_loss", "goal": "minimize"},
        "parameters": {"optimizer": {"values": ["adam", "sgd"]},
                       "dropout": {"values": [0.1, 0.3, 0.5]}, "epochs": {"value": 1},
                       "learning_rate": {"distribution": "uniform", "min": 0.001, "max": 0.1},
                       "batch_size": {"values": [64, 128]}}},
    "colabs/pyg/8_Node_Classification_(with_W&B).ipynb": {
        "name": "gcn-sweep", "method": "bayes",
        "metric": {"name": "gcn/accuracy", "goal": "maximize"},
        "parameters": {"hidden_channels": {"values": [8, 16, 32]},
                       "weight_decay": {"distribution": "normal", "mu": 0.0005, "sigma": 1e-05},
                       "lr": {"min": 0.0001, "max": 0.001}}},
    "colabs/pyg/pointnet-classification/03_sweep.ipynb": {
        "method": "bayes", "metric": {"goal": "maximize", "name": "Validation/Accuracy"},
        "parameters": {"batch_size": {"values": [8, 16, 32, 64]},
                       "sample_points": {"values": [512, 1024, 2048]},
                       "set_abstraction_ratio_1": {"min": 0.1, "max": 0.9},
                       "set_abstraction_ratio_2": {"min": 0.1, "max": 0.9},
                       "dropout": {"min": 0.1, "max": 0.7}}},
    "colabs/pytorch-lightning/Fine_tuning_a_Transformer_with_Pytorch_Lightning.ipynb": {
        "method": "random", "metric": {"name": "validation/epoch_acc", "goal": "maximize"},
        "parameters": {"learning_rate": {"values": [5e-05, 3e-05, 2e-05]},
                       "batch_size": {"values": [16, 32]}, "epochs": {"values": [1, 2]}}},
    "colabs/pytorch/Organizing_Hyperparameter_Sweeps_in_PyTorch_with_W&B.ipynb": {
        "method": "random", "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"optimizer": {"values": ["adam", "sgd"]},
                       "fc_layer_size": {"values": [128, 256, 512]},
                       "dropout": {"values": [0.3, 0.4, 0.5]}, "epochs": {"value": 1},
                       "learning_rate": {"distribution": "uniform", "min": 0, "max": 0.1},
                       "batch_size": {"distribution": "q_log_uniform_values", "q": 8,
                                      "min": 32, "max": 256}}},
    "colabs/super-gradients/yolo_nas_sweep_run.ipynb": {
        "name": "yolo-nas-sweep",  # WANDB_EXP_NAME in the notebook
        "metric": {"name": "Valid_mAP@0.50", "goal": "maximize"}, "method": "bayes",
        "parameters": {
            "batch_size": {"values": [16, 24, 32]},
            "optimizer": {"values": ["Adam", "SGD", "RMSProp", "AdamW"]},
            "ema_decay": {"min": 0.5, "max": 0.9},
            "ema_decay_type": {"values": ["constant", "threshold"]},
            "cosine_lr_ratio": {"min": 0.01, "max": 0.4},
            "iou_loss_weight": {"min": 0.25, "max": 2.0},
            "dfl_loss_weight": {"min": 0.25, "max": 2.0},
            "classification_loss_weight": {"min": 0.25, "max": 2.0},
            "model_flavor": {"values": ["yolo_nas_s", "yolo_nas_m", "yolo_nas_l"]},
            "weight_decay": {"min": 0.0001, "max": 0.01}}},
    "colabs/tensorflow/Hyperparameter_Optimization_in_TensorFlow_using_W&B_Sweeps.ipynb": {
        "method": "random", "metric": {"name": "val_loss", "goal": "minimize"},
        "early_terminate": {"type": "hyperband", "min_iter": 5},
        "parameters": {"batch_size": {"values": [32, 64, 128, 256]},
                       "learning_rate": {"values": [0.01, 0.005, 0.001, 0.0005, 0.0001]}}},
    "examples/wandb-sweeps/sweeps-python/sweep.py": {
        "method": "grid", "parameters": {"layers": {"values": [32, 64, 96, 128, 256]}}},
}

VALID += [{"source": f"{EXAMPLES_REPO} {path}", "config": _example(path)}
          for path in EXAMPLE_YAML if "launch-sweeps" not in path]
VALID += [{"source": f"{EXAMPLES_REPO} {path}", "config": config}
          for path, config in EXAMPLE_DICTS.items()]
# W&B Launch's sweeps (a scheduler job): refused, saying so.
INVALID += [{"source": f"{EXAMPLES_REPO} {path} (W&B Launch)", "key": "scheduler",
             "config": _example(path)}
            for path in EXAMPLE_YAML if "launch-sweeps" in path]
