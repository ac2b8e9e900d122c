"""Malformed sweep specs and ``--set`` values: each one is an ``InputError`` naming the key path.

``MALFORMED`` is reusable (for example by the CLI tests, which check exit status 2, no traceback
and untouched storage): ``(id, yaml_text, overrides, expected_key_path)``. Write the case with
``write_case(dir, yaml_text)`` (``<dir>/spec.yaml``, plus any file its trailing ``# name:``
comments declare, such as an experiment file) and load it with the overrides; the error message
starts with ``expected_key_path + ":"``. ``GIVEN[id]`` is text the message must show (what was
given), ``NAMES_FILE[id]`` the file it must name.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from wssweep.errors import InputError
from wssweep.spec import load_sweep_spec

# A small valid preamble most cases build on: an inline experiment and a grid over lr.
OK = "experiment: {lr: 0.01}\n"
RANDOM = OK + "method: random\nrun_cap: 4\n"
# An inline NQM experiment (its metric given), to be completed: `NQM.format(...)`.
NQM = "experiment: {{kind: nqm, {}}}\nmetric: {{name: nqm/final_loss}}\n"
NQM_H5 = NQM.format("meta_horizon: 5, nqm: {momentum: 0.9}")

MALFORMED: list[tuple[str, str, list[str], str]] = [
    # --- the file itself
    ("malformed_yaml", "experiment: {lr: [0.1\n", [], "SPEC"),
    ("spec_not_mapping", "- experiment\n- method\n", [], "SPEC"),
    ("no_experiment_key", "method: grid\nparameters: {lr: {values: [0.1]}}\n", [], "experiment"),
    # --- the experiment
    ("experiment_file_missing", "experiment: configs/nope.yaml\n", [], "experiment"),
    ("experiment_not_mapping", "experiment: [1, 2]\n", [], "experiment"),
    ("experiment_is_a_sweep", "experiment: sweeps/quickstart.yaml\n", [], "experiment"),
    ("experiment_invalid_value", "experiment: {lr: 0}\n", [], "experiment.lr"),
    ("experiment_unknown_key", "experiment: {model: {nmae: mlp}}\n", [], "experiment.model.nmae"),
    # --- top-level and nested keys
    ("unknown_top_level_key", OK + "methd: grid\n", [], "methd"),
    ("unknown_resources_key", OK + "resources: {cpus: 2}\n", [], "resources.cpus"),
    ("unknown_wandb_key", OK + "wandb: {projet: mine}\n", [], "wandb.projet"),
    ("unknown_early_terminate_key",
     OK + "early_terminate: {type: hyperband, min_iter: 1, etaa: 2}\n", [],
     "early_terminate.etaa"),
    ("unknown_metric_key", OK + "metric: {name: gap, targte: 0.25}\n", [], "metric.targte"),
    ("unknown_parameter_field", OK + "parameters: {lr: {values: [0.1], weights: [1]}}\n",
     [], "parameters.lr.weights"),
    ("bad_name", OK + "name: '%%%'\n", [], "name"),
    # --- method and metric
    ("bad_method", OK + "method: hyperband\n", [], "method"),
    ("bad_goal", OK + "metric: {name: gap, goal: lower}\n", [], "metric.goal"),
    ("metric_not_reported", OK + "metric: {name: loss}\n", [], "metric.name"),
    ("metric_of_other_kind", OK + "metric: {name: nqm/final_loss}\n", [], "metric.name"),
    # --- parameter shapes
    ("empty_values", OK + "parameters: {lr: {values: []}}\n", [], "parameters.lr.values"),
    ("value_and_values", OK + "parameters: {lr: {value: 0.3, values: [0.1]}}\n", [],
     "parameters.lr"),
    ("no_value_values_or_distribution", OK + "parameters: {lr: {}}\n", [], "parameters.lr"),
    ("probabilities_not_summing_to_1",
     RANDOM + "parameters: {lr: {values: [0.25, 0.5], probabilities: [0.5, 0.25]}}\n", [],
     "parameters.lr.probabilities"),
    ("unknown_distribution", RANDOM + "parameters: {lr: {distribution: lognormal}}\n", [],
     "parameters.lr.distribution"),
    ("distribution_without_min",
     RANDOM + "parameters: {lr: {distribution: uniform, max: 0.125}}\n", [], "parameters.lr.min"),
    ("distribution_without_max",
     RANDOM + "parameters: {lr: {distribution: log_uniform_values, min: 0.125}}\n", [],
     "parameters.lr.max"),
    ("min_not_a_number",
     RANDOM + "parameters: {lr: {distribution: uniform, min: low, max: 1}}\n", [],
     "parameters.lr.min"),
    ("min_equal_max", RANDOM + "parameters: {lr: {distribution: uniform, min: 0.5, max: 0.5}}\n",
     [], "parameters.lr.max"),
    ("min_above_max", RANDOM + "parameters: {lr: {distribution: uniform, min: 0.5, max: 0.125}}\n",
     [], "parameters.lr.max"),
    ("log_uniform_min_zero",
     RANDOM + "parameters: {lr: {distribution: log_uniform_values, min: 0, max: 0.125}}\n", [],
     "parameters.lr.min"),
    ("q_uniform_q_zero",
     RANDOM + "parameters: {shrink: {distribution: q_uniform, min: 0.25, max: 0.75, q: 0}}\n",
     [], "parameters.shrink.q"),
    ("normal_sigma_zero", RANDOM + "parameters: {lr: {distribution: normal, mu: 1, sigma: 0}}\n",
     [], "parameters.lr.sigma"),
    ("normal_on_a_positive_key",
     RANDOM + "parameters: {lr: {distribution: normal, mu: 0.1, sigma: 0.1}}\n", [],
     "parameters.lr"),
    ("log_uniform_exponent_overflows",
     RANDOM + "parameters: {lr: {distribution: log_uniform, min: 0, max: 1000}}\n", [],
     "parameters.lr"),
    ("beta_b_negative", RANDOM + "parameters: {shrink: {distribution: beta, b: -1}}\n", [],
     "parameters.shrink.b"),
    ("mu_with_uniform",
     RANDOM + "parameters: {lr: {distribution: uniform, min: 0.1, max: 1, mu: 0.5}}\n", [],
     "parameters.lr.mu"),
    ("nested_parameters_empty", OK + "method: grid\nparameters: {optim: {parameters: {}}}\n", [],
     "parameters.optim.parameters"),
    ("nested_parameters_with_values",
     OK + "method: grid\nparameters: {optim: {parameters: {momentum: {value: 0.5}}, "
     "values: [1]}}\n", [], "parameters.optim.values"),
    ("nested_and_flat_same_key", OK + "method: grid\nparameters:\n"
     "  optim: {parameters: {momentum: {value: 0.5}}}\n  optim.momentum: {value: 0.25}\n", [],
     "parameters.optim.momentum"),
    ("nested_key_unknown", OK + "method: grid\nparameters: {optim: {parameters: "
     "{momentun: {value: 0.5}}}}\n", [], "parameters.optim.momentun"),
    ("q_with_uniform",
     RANDOM + "parameters: {shrink: {distribution: uniform, min: 0.1, max: 0.7, q: 0.125}}\n",
     [], "parameters.shrink.q"),
    ("int_uniform_float_bound",
     RANDOM + "parameters: {warmup_steps: {distribution: int_uniform, min: 0, max: 10.5}}\n", [],
     "parameters.warmup_steps.max"),
    ("categorical_without_values", OK + "parameters: {lr: {distribution: categorical}}\n", [],
     "parameters.lr.values"),
    ("values_with_range_distribution",
     RANDOM + "parameters: {lr: {distribution: uniform, values: [0.75], min: 0.5, max: 1}}\n",
     [], "parameters.lr.values"),
    ("min_with_values", OK + "parameters: {lr: {values: [0.1], min: 0.0625}}\n", [],
     "parameters.lr.min"),
    # --- rules of the search
    ("grid_with_continuous_distribution",
     OK + "method: grid\nparameters: {lr: {distribution: uniform, min: 0.5, max: 0.75}}\n", [],
     "parameters.lr.distribution"),
    ("grid_with_inferred_range", OK + "parameters: {shrink: {min: 0.25, max: 0.75}}\n", [],
     "parameters.shrink.distribution"),
    ("seeds_until_without_run_cap", OK + "method: random\nseeds: {min: 2, max: 4, until: "
     "decided}\nparameters: {lr: {values: [0.1]}}\n", [], "run_cap"),
    ("seeds_until_bayes_with_normal", OK + "method: bayes\nrun_cap: 4\nmetric: {name: gap}\n"
     "seeds: {min: 2, max: 4, until: decided}\n"
     "parameters: {optim.weight_decay: {distribution: log_normal}}\n", [],
     "parameters.optim.weight_decay.distribution"),
    ("method_missing", OK + "parameters: {lr: {values: [0.1]}}\n", [], "method"),
    ("method_custom", OK + "method: custom\nparameters: {lr: {values: [0.1]}}\n", [], "method"),
    ("scheduler_given", OK + "method: bayes\nscheduler: {engine: wandb}\n"
     "parameters: {lr: {values: [0.1]}}\n", [], "scheduler"),
    ("metrics_given", OK + "method: random\nmetrics: [{name: gap}, {name: warm/test_acc}]\n"
     "parameters: {lr: {values: [0.1]}}\n", [], "metrics"),
    ("parameters_missing", OK + "method: grid\n", [], "parameters"),
    ("parameters_empty", OK + "method: grid\nparameters: {}\n", [], "parameters"),
    ("metric_without_name", OK + "method: grid\nmetric: {goal: maximize}\n"
     "parameters: {lr: {values: [0.1]}}\n", [], "metric.name"),
    ("bayes_without_metric", OK + "method: bayes\nparameters: {lr: {values: [0.1, 0.2]}}\n", [],
     "metric"),
    ("early_terminate_without_metric", OK + "method: grid\nparameters: {lr: {values: [0.1]}}\n"
     "early_terminate: {type: hyperband, min_iter: 2}\n", [], "metric"),
    ("run_cap_string", OK + "method: random\nrun_cap: '1'\nparameters: {lr: {values: [0.1]}}\n",
     [], "run_cap"),
    ("metric_impute_unknown", OK + "method: bayes\nmetric: {name: gap, impute: mean}\n"
     "parameters: {lr: {values: [0.1, 0.2]}}\n", [], "metric.impute"),
    ("controller_type_unknown", OK + "method: grid\ncontroller: {type: remote}\n"
     "parameters: {lr: {values: [0.1]}}\n", [], "controller.type"),
    ("command_not_a_list", OK + "method: grid\ncommand: python train.py\n"
     "parameters: {lr: {values: [0.1]}}\n", [], "command"),
    ("int_uniform_beyond_64_bits", OK + "method: random\nparameters: {warmup_steps: {min: 0, "
     "max: 1" + "0" * 30 + "}}\n", [], "parameters.warmup_steps.max"),
    ("grid_too_large", OK + "method: grid\nparameters: {warmup_steps: {min: 0, max: 1000000}}\n",
     [], "parameters.warmup_steps"),
    ("run_cap_zero", OK + "run_cap: 0\n", [], "run_cap"),
    ("run_cap_below_seeds", OK + "method: random\nrun_cap: 2\nseeds: [0, 1, 2]\n"
     "parameters: {lr: {values: [0.1]}}\n", [], "run_cap"),
    ("bayes_only_constants", OK + "method: bayes\nrun_cap: 3\nparameters: {lr: {value: 0.1}}\n",
     [], "parameters"),
    ("bayes_list_category_invalid", OK + "method: bayes\nrun_cap: 3\n"
     "parameters: {optim.betas: {values: [[0.875, 0.99], [0.9, 1.5]]}}\n", [],
     "parameters.optim.betas.1"),
    ("seeds_empty", OK + "seeds: []\n", [], "seeds"),
    ("seeds_duplicate", OK + "seeds: [3, 3]\n", [], "seeds"),
    ("seeds_negative", OK + "seeds: [0, -7]\n", [], "seeds.1"),
    ("seeds_not_int", OK + "seeds: [0, many]\n", [], "seeds.1"),
    # --- seeds until decided
    ("seeds_until_min_too_small", OK + "seeds: {min: 1, max: 4, until: decided}\n", [],
     "seeds.min"),
    ("seeds_until_max_below_min", OK + "seeds: {min: 4, max: 3, until: decided}\n", [],
     "seeds.max"),
    ("seeds_until_unknown_rule", OK + "seeds: {min: 2, max: 4, until: forever}\n", [],
     "seeds.until"),
    ("seeds_until_unknown_key", OK + "seeds: {min: 2, max: 4, until: decided, step: 2}\n", [],
     "seeds.step"),
    ("gap_tolerance_negative", OK + "gap_tolerance: -0.5\n", [], "gap_tolerance"),
    # --- resources, wandb, early termination
    ("cpus_per_trial_zero", OK + "resources: {cpus_per_trial: 0}\n", [],
     "resources.cpus_per_trial"),
    ("trials_per_gpu_zero", OK + "resources: {trials_per_gpu: 0}\n", [],
     "resources.trials_per_gpu"),
    ("trials_per_gpu_fraction", OK + "resources: {trials_per_gpu: 2.5}\n", [],
     "resources.trials_per_gpu"),
    ("max_failures_below_forever", OK + "resources: {max_failures: -2}\n", [],
     "resources.max_failures"),
    ("max_failures_boolean", OK + "resources: {max_failures: true}\n", [],
     "resources.max_failures"),
    ("wandb_mode_bad", OK + "wandb: {mode: cloud}\n", [], "wandb.mode"),
    ("wandb_tags_not_strings", OK + "wandb: {tags: [ok, 17]}\n", [], "wandb.tags.1"),
    ("early_terminate_without_iter", OK + "early_terminate: {type: hyperband, eta: 3}\n", [],
     "early_terminate"),
    ("early_terminate_strict_not_boolean",
     OK + "early_terminate: {type: hyperband, min_iter: 2, strict: 'yes'}\n", [],
     "early_terminate.strict"),
    ("early_terminate_s_not_integer",
     OK + "early_terminate: {type: hyperband, max_iter: 27, s: 2.5}\n", [],
     "early_terminate.s"),
    ("early_terminate_min_iter_fraction",
     OK + "early_terminate: {type: hyperband, min_iter: 2.5}\n", [],
     "early_terminate.min_iter"),
    ("early_terminate_without_type", OK + "early_terminate: {min_iter: 2}\n", [],
     "early_terminate.type"),
    ("early_terminate_bad_type", OK + "early_terminate: {type: envelope, min_iter: 2}\n", [],
     "early_terminate.type"),
    ("early_terminate_eta_1", OK + "early_terminate: {type: hyperband, min_iter: 2, eta: 1}\n",
     [], "early_terminate.eta"),
    ("early_terminate_max_iter_without_s",
     OK + "early_terminate: {type: hyperband, max_iter: 27}\n", [], "early_terminate.s"),
    ("early_terminate_max_iter_below_eta",
     OK + "early_terminate: {type: hyperband, max_iter: 2, s: 1, eta: 3}\n", [],
     "early_terminate.max_iter"),
    ("early_terminate_on_nqm", "experiment: configs/nqm.yaml\nmetric: {name: nqm/final_loss}\n"
     "early_terminate: {type: hyperband, min_iter: 2}\n", [], "early_terminate"),
    # --- parameters against the experiment
    ("parameter_key_unknown", OK + "parameters: {warm.intervnetion: {values: [none]}}\n", [],
     "parameters.warm.intervnetion"),
    ("parameter_key_malformed", OK + "parameters: {'warm..perturb': {values: [0.1]}}\n", [],
     "parameters.warm..perturb"),
    ("parameter_seed", OK + "parameters: {seed: {values: [1, 2]}}\n", [], "parameters.seed"),
    ("parameter_nested_under_swept",
     OK + "parameters: {warm: {values: [{perturb: 0.1}]}, warm.perturb: {values: [0.2]}}\n", [],
     "parameters.warm.perturb"),
    ("parameter_shrink_out_of_range", OK + "parameters: {shrink: {values: [0.4, 1.5]}}\n", [],
     "parameters.shrink"),
    ("parameter_lr_negative", OK + "parameters: {lr: {values: [-0.125]}}\n", [],
     "parameters.lr"),
    ("parameter_range_end_invalid",
     RANDOM + "parameters: {lr: {distribution: uniform, min: -1, max: 1}}\n", [],
     "parameters.lr"),
    ("parameter_bad_choice", OK + "parameters: {optim.name: {values: [sgd, rmsprop]}}\n", [],
     "parameters.optim.name"),
    ("parameter_constant_invalid", OK + "parameters: {protocol.chunks: {value: 1}}\n", [],
     "parameters.protocol.chunks"),
    ("parameter_float_range_on_integer_key",
     RANDOM + "parameters: {warmup_steps: {distribution: uniform, min: 0.0, max: 100.0}}\n", [],
     "parameters.warmup_steps.distribution"),
    # --- rules across keys of a kind: nqm experiment (a run would break them)
    ("nqm_online_without_horizon", NQM.format("nqm: {method: online}"), [],
     "experiment.meta_horizon"),
    ("nqm_optimal_schedule_without_horizon", NQM.format("nqm: {method: optimal_schedule}"), [],
     "experiment.meta_horizon"),
    ("nqm_greedy_with_momentum", NQM.format("nqm: {method: greedy, momentum: 0.5}"), [],
     "experiment.nqm.momentum"),
    ("nqm_curvature_underflows", NQM.format("meta_horizon: 1, nqm: {spectrum_power: 200}"), [],
     "experiment.nqm.spectrum_power"),
    ("nqm_theta0_std_overflows", NQM.format("meta_horizon: 1, nqm: {theta0_std: 1.0e+200}"), [],
     "experiment.nqm.theta0_std"),
    ("nqm_swept_method_against_momentum",
     NQM_H5 + "parameters: {nqm.method: {values: [online, greedy]}}\n", [],
     "parameters.nqm.method"),
    ("nqm_swept_kind_without_horizon", OK + "parameters: {kind: {values: [network, nqm]}}\n",
     [], "parameters.kind"),
    ("nqm_grid_combination", NQM.format("meta_horizon: 5") + "parameters:\n"
     "  nqm.method: {values: [online, greedy]}\n  nqm.momentum: {values: [0.0, 0.9]}\n", [],
     "parameters.nqm.momentum"),
    ("nqm_random_combination", NQM.format("meta_horizon: 5") + "method: random\nrun_cap: 4\n"
     "parameters:\n  nqm.method: {values: [online, greedy]}\n"
     "  nqm.momentum: {min: 0.0, max: 0.5}\n", [], "parameters.nqm.momentum"),
    ("nqm_set_method_against_momentum", NQM_H5, ["nqm.method=greedy"], "--set nqm.method"),
    # --- --set overrides
    ("set_without_equals", OK, ["lr0.1"], "--set"),
    ("set_unknown_key", OK, ["warm.intervnetion=dash"], "--set warm.intervnetion"),
    ("set_bad_value", OK, ["lr=-0.5"], "--set lr"),
    ("set_bad_type", OK, ["protocol.chunks=many"], "--set protocol.chunks"),
    ("set_through_scalar", OK, ["lr.x=1"], "--set lr.x"),
    ("set_swept_key", OK + "parameters: {lr: {values: [0.1, 0.3]}}\n", ["lr=0.2"], "--set lr"),
    ("set_under_swept_key", OK + "parameters: {warm: {values: [{perturb: 0.1}]}}\n",
     ["warm.perturb=0.2"], "--set warm.perturb"),
    ("set_seed", OK, ["seed=3"], "--set seed"),
    # --- a boolean is never a number; NaN and infinities are no setting
    ("parameter_lr_infinite", OK + "parameters: {lr: {values: [.inf]}}\n", [], "parameters.lr"),
    ("parameter_lr_nan", OK + "parameters: {lr: {values: [0.1, .nan]}}\n", [], "parameters.lr"),
    ("parameter_lr_boolean", OK + "parameters: {lr: {values: [true]}}\n", [], "parameters.lr"),
    ("parameter_warmup_steps_boolean", OK + "parameters: {warmup_steps: {values: [true]}}\n", [],
     "parameters.warmup_steps"),
    ("parameter_constant_boolean", OK + "parameters: {optim.momentum: {value: false}}\n", [],
     "parameters.optim.momentum"),
    ("parameter_betas_boolean", OK + "parameters: {optim.betas: {values: [[true, 0.999]]}}\n",
     [], "parameters.optim.betas.0"),
    ("parameter_warmup_init_infinite", OK + "parameters: {optim.warmup_init: {values: [-.inf]}}\n",
     [], "parameters.optim.warmup_init"),
    ("min_boolean", RANDOM + "parameters: {lr: {distribution: uniform, min: true, max: 2}}\n", [],
     "parameters.lr.min"),
    ("max_infinite", RANDOM + "parameters: {lr: {distribution: uniform, min: 0.5, max: .inf}}\n",
     [], "parameters.lr.max"),
    ("experiment_lr_infinite", "experiment: {lr: .inf}\n", [], "experiment.lr"),
    ("experiment_shrink_nan", "experiment: {shrink: .nan}\n", [], "experiment.shrink"),
    ("experiment_threads_boolean", "experiment: {threads: true}\n", [], "experiment.threads"),
    ("experiment_betas_nan", "experiment: {optim: {betas: [0.9, .nan]}}\n", [],
     "experiment.optim.betas.1"),
    ("experiment_warmup_init_boolean", "experiment: {optim: {warmup_init: true}}\n", [],
     "experiment.optim.warmup_init"),
    ("set_lr_boolean", OK, ["lr=true"], "--set lr"),
    ("set_lr_infinite", OK, ["lr=.inf"], "--set lr"),
    ("seeds_boolean", OK + "seeds: [0, true]\n", [], "seeds.1"),
    ("run_cap_boolean", OK + "method: random\nrun_cap: true\n", [], "run_cap"),
    ("trials_per_gpu_boolean", OK + "resources: {trials_per_gpu: true}\n", [],
     "resources.trials_per_gpu"),
    ("cpus_per_trial_infinite", OK + "resources: {cpus_per_trial: .inf}\n", [],
     "resources.cpus_per_trial"),
    ("gap_tolerance_boolean", OK + "gap_tolerance: true\n", [], "gap_tolerance"),
    ("gap_tolerance_infinite", OK + "gap_tolerance: .inf\n", [], "gap_tolerance"),
    ("early_terminate_eta_boolean",
     OK + "early_terminate: {type: hyperband, min_iter: 2, eta: true}\n", [],
     "early_terminate.eta"),
    # --- a key given twice (YAML would silently keep the last)
    ("duplicate_parameter", OK + "parameters:\n  lr: {values: [0.1]}\n  lr: {values: [0.2]}\n",
     [], "parameters.lr"),
    ("duplicate_inline_experiment_key", "experiment: {lr: 0.1, lr: 0.2}\n", [],
     "experiment.lr"),
    ("duplicate_top_level_key", OK + "method: grid\nmethod: random\n", [], "method"),
    ("duplicate_parameter_field", OK + "parameters: {lr: {values: [0.1], values: [0.2]}}\n", [],
     "parameters.lr.values"),
    ("duplicate_in_a_list", OK + "wandb: {tags: [{a: 1, a: 2}]}\n", [], "wandb.tags.0.a"),
    ("duplicate_in_experiment_file", "experiment: exp.yaml\n"
     "# exp.yaml: optim:\n#   momentum: 0.5\n#   momentum: 0.9\n", [],
     "experiment.optim.momentum"),
    # --- paths the system cannot use
    ("experiment_path_too_long", "experiment: " + "x" * 5000 + ".yaml\n", [], "experiment"),
    ("experiment_path_nul", 'experiment: "configs/a\\0b.yaml"\n', [], "experiment"),
    ("name_too_long", OK + "name: " + "n" * 300 + "\n", [], "name"),
    ("experiment_data_root_too_long", "experiment: {data: {root: /" + "r" * 5000 + "}}\n", [],
     "experiment.data.root"),
    ("experiment_factory_not_an_import_path", "experiment: {model: {factory: mymodels}}\n", [],
     "experiment.model.factory"),
    # --- a file that is no mapping names the file and what it holds
    ("spec_empty", "", [], "SPEC"),
    ("spec_only_comments", "# a sweep, one day\n\n# nothing yet\n", [], "SPEC"),
    ("spec_a_scalar", "just some words\n", [], "SPEC"),
    ("spec_null", "~\n", [], "SPEC"),
    ("experiment_file_empty", "experiment: exp.yaml\n# exp.yaml:\n", [], "experiment"),
    ("experiment_file_a_list", "experiment: exp.yaml\n# exp.yaml: [1, 2]\n", [], "experiment"),
    # --- values a YAML type cannot hold, or numbers too large for a float
    ("yaml_value_invalid", OK + "description: 2024-13-45\n", [], "SPEC"),
    ("yaml_int_too_long", OK + "run_cap: " + "9" * 5000 + "\n", [], "SPEC"),
    ("yaml_nested_too_deep", "experiment: " + "[" * 5000 + "]" * 5000 + "\n", [], "SPEC"),
    ("q_too_small", RANDOM + "parameters: {warmup_steps: {distribution: "
     "q_uniform, min: 0, max: 10, q: 1.0e-320}}\n", [], "parameters.warmup_steps.distribution"),
    ("max_too_large", RANDOM + "parameters: {warmup_steps: {min: 0, max: 1" + "0" * 400 + "}}\n",
     [], "parameters.warmup_steps.max"),
    ("q_too_large", RANDOM + "parameters: {warmup_steps: {distribution: q_uniform, min: 0, "
     "max: 10, q: 1" + "0" * 400 + "}}\n", [], "parameters.warmup_steps.q"),
    ("value_too_large", OK + "parameters: {warmup_steps: {value: 1" + "0" * 400 + "}}\n", [],
     "parameters.warmup_steps"),
    ("experiment_int_too_large", "experiment: {protocol: {chunks: 1" + "0" * 400 + "}}\n", [],
     "experiment.protocol.chunks"),
    ("set_int_too_large", OK, ["warmup_steps=1" + "0" * 400], "--set warmup_steps"),
    # --- values a YAML tag cannot read (PyYAML raises KeyError, AttributeError, ValueError)
    ("yaml_tag_bool_unreadable", OK + "description: !!bool maybe\n", [], "SPEC"),
    ("yaml_tag_timestamp_unreadable", OK + "description: !!timestamp abc\n", [], "SPEC"),
    ("experiment_file_tag_unreadable", "experiment: exp.yaml\n"
     "# exp.yaml: {cold_at_chosen_lr: !!bool maybe}\n", [], "experiment"),
    ("set_tag_bool_unreadable", OK, ["lr=!!bool maybe"], "--set lr"),
    ("set_tag_float_unreadable", OK, ["lr=!!float abc"], "--set lr"),
    ("set_date_invalid", OK, ["lr=2024-13-45"], "--set lr"),
    ("set_int_too_long", OK, ["lr=" + "9" * 5000], "--set lr"),
    ("set_nested_too_deep", OK, ["lr=" + "[" * 5000 + "]" * 5000], "--set lr"),
    # --- sizes validation could not finish: a grid's product, hyperband's bands
    ("grid_product_too_large", OK + "method: grid\nparameters:\n  warmup_steps: {min: 0, max: "
     "99}\n  optim.batch_size: {min: 1, max: 100}\n  meta_horizon: {min: 0, max: 99}\n", [],
     "parameters"),
    ("early_terminate_too_many_bands", OK + "metric: {name: gap}\nearly_terminate: {type: "
     "hyperband, max_iter: 1000000, s: 1000000000, eta: 1.0000001}\n", [],
     "early_terminate.eta"),
    # --- a named reference no trial can match (the verdicts would have no reference)
    ("reference_on_a_continuous_range", RANDOM + "parameters: {lr: {distribution: "
     "log_uniform_values, min: 0.001, max: 0.1}}\nreference: {lr: 0.01}\n", [],
     "reference.lr"),
    ("reference_off_the_grid", OK + "method: grid\nparameters: {optim.batch_size: {min: 32, "
     "max: 64}}\nreference: {optim.batch_size: 100}\n", [], "reference.optim.batch_size"),
    ("reference_not_an_int_draw", RANDOM + "parameters: {optim.batch_size: {min: 32, max: 64}}"
     "\nreference: {optim.batch_size: 40.5}\n", [], "reference.optim.batch_size"),
    ("reference_not_the_constant", OK + "method: grid\nparameters: {lr: {value: 0.1}}\n"
     "reference: {lr: 0.2}\n", [], "reference.lr"),
    # --- threads: a sweep's trials run resources.cpus_per_trial threads, whatever is given
    ("experiment_threads_in_a_sweep", "experiment: {lr: 0.01, threads: 2}\n", [],
     "experiment.threads"),
    ("set_threads_in_a_sweep", OK, ["threads=8"], "--set threads"),
    ("parameter_threads_in_a_sweep", OK + "parameters: {threads: {values: [1, 2]}}\n", [],
     "parameters.threads"),
    # --- W&B's own rules for names (wandb.init would refuse them in every trial)
    ("wandb_project_with_slash", OK + "wandb: {project: team/project}\n", [], "wandb.project"),
    ("wandb_project_too_long", OK + "wandb: {project: " + "p" * 129 + "}\n", [],
     "wandb.project"),
    ("wandb_tag_empty", OK + "wandb: {tags: [ok, '']}\n", [], "wandb.tags.1"),
    ("wandb_tag_too_long", OK + "wandb: {tags: [" + "t" * 65 + "]}\n", [], "wandb.tags.0"),
]

# Files a case's spec refers to: a '# <name>:' comment line starts one, and the comment lines
# after it, uncommented, are its text (so each case stays one string, as the CLI tests replay it).
_FILE = re.compile(r"^# (?P<name>[\w.]+):(?P<rest>.*)$")


def side_files(yaml_text: str) -> dict[str, str]:
    """The files ``yaml_text`` declares in its trailing ``# name: ...`` comments."""
    files: dict[str, list[str]] = {}
    current = None
    for line in yaml_text.splitlines():
        match = _FILE.match(line)
        if match:
            current = match["name"]
            files[current] = [match["rest"].strip()] if match["rest"].strip() else []
        elif current is not None and line.startswith("#"):
            files[current].append(line[2:])
    return {name: "\n".join(lines) + "\n" if lines else "" for name, lines in files.items()}


def write_case(folder: Path, yaml_text: str) -> Path:
    """Write a case's spec (and the files it declares) into ``folder``; the spec's path."""
    for name, text in side_files(yaml_text).items():
        (folder / name).write_text(text)
    path = folder / "spec.yaml"
    path.write_text(yaml_text)
    return path

# Text each message must show: what was given.
GIVEN: dict[str, str] = {
    "malformed_yaml": "spec.yaml",
    "spec_not_mapping": "list",
    "no_experiment_key": "nothing",
    "experiment_file_missing": "configs/nope.yaml",
    "experiment_not_mapping": "[1, 2]",
    "experiment_is_a_sweep": "sweeps/quickstart.yaml",
    "experiment_invalid_value": "0",
    "experiment_unknown_key": "mlp",
    "unknown_top_level_key": "grid",
    "unknown_resources_key": "2",
    "unknown_wandb_key": "mine",
    "unknown_early_terminate_key": "2",
    "unknown_metric_key": "0.25",
    "unknown_parameter_field": "[1]",
    "bad_name": "%%%",
    "bad_method": "hyperband",
    "bad_goal": "lower",
    "metric_not_reported": "loss",
    "metric_of_other_kind": "nqm/final_loss",
    "empty_values": "[]",
    "value_and_values": "0.3",
    "no_value_values_or_distribution": "{}",
    "probabilities_not_summing_to_1": "[0.5, 0.25]",
    "unknown_distribution": "lognormal",
    "distribution_without_min": "None",
    "distribution_without_max": "None",
    "min_not_a_number": "low",
    "min_equal_max": "0.5",
    "min_above_max": "0.125",
    "log_uniform_min_zero": "got 0",
    "q_uniform_q_zero": "got 0",
    "normal_sigma_zero": "got 0",
    "normal_on_a_positive_key": "got -0.4",
    "log_uniform_exponent_overflows": "'max': 1000",
    "beta_b_negative": "got -1",
    "mu_with_uniform": "got 0.5",
    "nested_parameters_empty": "{}",
    "nested_parameters_with_values": "[1]",
    "nested_and_flat_same_key": "optim.momentum",
    "nested_key_unknown": "0.5",
    "q_with_uniform": "0.125",
    "int_uniform_float_bound": "10.5",
    "categorical_without_values": "None",
    "values_with_range_distribution": "[0.75]",
    "min_with_values": "0.0625",
    "grid_with_continuous_distribution": "uniform",
    "grid_with_inferred_range": "uniform",
    "seeds_until_without_run_cap": "None",
    "seeds_until_bayes_with_normal": "log_normal",
    "method_missing": "got nothing",
    "method_custom": "W&B Launch",
    "scheduler_given": "'engine': 'wandb'",
    "metrics_given": "warm/test_acc",
    "parameters_missing": "got nothing",
    "parameters_empty": "got {}",
    "metric_without_name": "got nothing",
    "bayes_without_metric": "got nothing",
    "early_terminate_without_metric": "got nothing",
    "run_cap_string": "'1'",
    "metric_impute_unknown": "mean",
    "controller_type_unknown": "remote",
    "command_not_a_list": "python train.py",
    "int_uniform_beyond_64_bits": "(an integer of 31 digits)",
    "grid_too_large": "1000001 values",
    "run_cap_zero": "got 0",
    "run_cap_below_seeds": "got 2",
    "bayes_only_constants": "['lr']",
    "bayes_list_category_invalid": "1.5",
    "seeds_empty": "[]",
    "seeds_duplicate": "[3, 3]",
    "seeds_negative": "-7",
    "seeds_not_int": "many",
    "seeds_until_min_too_small": "got 1",
    "seeds_until_max_below_min": "got 3",
    "seeds_until_unknown_rule": "forever",
    "seeds_until_unknown_key": "got 2",
    "gap_tolerance_negative": "-0.5",
    "cpus_per_trial_zero": "got 0",
    "trials_per_gpu_zero": "got 0",
    "trials_per_gpu_fraction": "2.5",
    "max_failures_below_forever": "-2",
    "max_failures_boolean": "True",
    "wandb_mode_bad": "cloud",
    "wandb_tags_not_strings": "17",
    "early_terminate_without_iter": "hyperband",
    "early_terminate_strict_not_boolean": "yes",
    "early_terminate_s_not_integer": "2.5",
    "early_terminate_min_iter_fraction": "2.5",
    "early_terminate_without_type": "nothing",
    "early_terminate_bad_type": "envelope",
    "early_terminate_eta_1": "got 1",
    "early_terminate_max_iter_without_s": "None",
    "early_terminate_max_iter_below_eta": "got 2",
    "early_terminate_on_nqm": "min_iter",
    "parameter_key_unknown": "none",
    "parameter_key_malformed": "warm..perturb",
    "parameter_seed": "seed",
    "parameter_nested_under_swept": "warm.perturb",
    "parameter_shrink_out_of_range": "1.5",
    "parameter_lr_negative": "-0.125",
    "parameter_range_end_invalid": "-1",
    "parameter_bad_choice": "rmsprop",
    "parameter_constant_invalid": "got 1",
    "parameter_float_range_on_integer_key": "uniform",
    "nqm_online_without_horizon": "nqm.method online",
    "nqm_optimal_schedule_without_horizon": "got 0",
    "nqm_greedy_with_momentum": "with nqm.method greedy (the greedy rate is the closed form for "
                                "plain SGD), got 0.5",
    "nqm_curvature_underflows": "got 200",
    "nqm_theta0_std_overflows": "got 1e+200",
    "nqm_swept_method_against_momentum": "(nqm.momentum: expected 0 with nqm.method greedy",
    "nqm_swept_kind_without_horizon": "(meta_horizon: expected an integer >= 1",
    "nqm_grid_combination": "in the combination nqm.method: 'greedy', nqm.momentum: 0.9, got 0.9",
    "nqm_random_combination": "nqm.momentum: 0.5, got 0.5",
    "nqm_set_method_against_momentum": "(nqm.momentum: expected 0 with nqm.method greedy",
    "set_without_equals": "lr0.1",
    "set_unknown_key": "dash",
    "set_bad_value": "-0.5",
    "set_bad_type": "many",
    "set_through_scalar": "0.01",
    "set_swept_key": "lr=0.2",
    "set_under_swept_key": "warm.perturb=0.2",
    "set_seed": "seed=3",
    "parameter_lr_infinite": "got inf",
    "parameter_lr_nan": "got nan",
    "parameter_lr_boolean": "not a boolean, got True",
    "parameter_warmup_steps_boolean": "an integer, not a boolean, got True",
    "parameter_constant_boolean": "not a boolean, got False",
    "parameter_betas_boolean": "not a boolean, got True",
    "parameter_warmup_init_infinite": "got -inf",
    "min_boolean": "got True",
    "max_infinite": "got inf",
    "experiment_lr_infinite": "a finite number, got inf",
    "experiment_shrink_nan": "got nan",
    "experiment_threads_boolean": "an integer, not a boolean, got True",
    "experiment_betas_nan": "got nan",
    "experiment_warmup_init_boolean": "got True",
    "set_lr_boolean": "not a boolean, got True",
    "set_lr_infinite": "got inf",
    "seeds_boolean": "not a boolean, got True",
    "run_cap_boolean": "not a boolean, got True",
    "trials_per_gpu_boolean": "not a boolean, got True",
    "cpus_per_trial_infinite": "got inf",
    "gap_tolerance_boolean": "not a boolean, got True",
    "gap_tolerance_infinite": "got inf",
    "early_terminate_eta_boolean": "not a boolean, got True",
    "duplicate_parameter": "'lr' twice, at lines 3 and 4 of ",
    "duplicate_inline_experiment_key": "'lr' twice, at line 1 (columns 14 and 23) of ",
    "duplicate_top_level_key": "'method' twice, at lines 2 and 3 of ",
    "duplicate_parameter_field": "'values' twice",
    "duplicate_in_a_list": "'a' twice",
    "duplicate_in_experiment_file": "'momentum' twice, at lines 2 and 3 of ",
    "experiment_path_too_long": "File name too long",
    "experiment_path_nul": "configs/a\\x00b.yaml",
    "name_too_long": "n" * 300,
    "experiment_data_root_too_long": "(5001 characters)",
    "experiment_factory_not_an_import_path": "'package.module:function', got 'mymodels'",
    "spec_empty": "got an empty file",
    "spec_only_comments": "got a file with nothing but comments",
    "spec_a_scalar": "got a str ('just some words')",
    "spec_null": "got null",
    "experiment_file_empty": "got an empty file",
    "experiment_file_a_list": "got a list ([1, 2])",
    "yaml_value_invalid": "month must be in 1..12",
    "yaml_int_too_long": "digits",
    "yaml_nested_too_deep": "nested less deeply",
    "q_too_small": "q_uniform",
    "max_too_large": "(an integer of 401 digits)",
    "q_too_large": "(an integer of 401 digits)",
    "value_too_large": "(an integer of 401 digits)",
    "experiment_int_too_large": "(an integer of 401 digits)",
    "set_int_too_large": "(an integer of 401 digits)",
    "yaml_tag_bool_unreadable": "a tagged value its tag cannot read",
    "yaml_tag_timestamp_unreadable": "a tagged value its tag cannot read",
    "experiment_file_tag_unreadable": "a tagged value its tag cannot read",
    "set_tag_bool_unreadable": "'!!bool maybe'",
    "set_tag_float_unreadable": "'!!float abc'",
    "set_date_invalid": "'2024-13-45'",
    "set_int_too_long": "9999",
    "set_nested_too_deep": "[[[",
    "grid_product_too_large": "1000000 settings (100 x 100 x 100 values)",
    "early_terminate_too_many_bands": "1.0000001",
    "reference_on_a_continuous_range": "a log_uniform_values draw never equals",
    "reference_off_the_grid": "one of the 33 values the grid gives optim.batch_size",
    "reference_not_an_int_draw": "got 40.5",
    "reference_not_the_constant": "expected the parameter's value 0.1, got 0.2",
    "experiment_threads_in_a_sweep": "runs resources.cpus_per_trial threads (set that instead), "
                                     "got 2",
    "set_threads_in_a_sweep": "got 8",
    "parameter_threads_in_a_sweep": "'values': [1, 2]",
    "wandb_project_with_slash": "'team/project'",
    "wandb_project_too_long": "ppp",
    "wandb_tag_empty": "''",
    "wandb_tag_too_long": "ttt",
}

# Text each message of a case with files must show: the file at fault, by name.
NAMES_FILE: dict[str, str] = {
    "spec_empty": "spec.yaml",
    "spec_only_comments": "spec.yaml",
    "spec_a_scalar": "spec.yaml",
    "spec_null": "spec.yaml",
    "spec_not_mapping": "spec.yaml",
    "experiment_file_empty": "exp.yaml",
    "experiment_file_a_list": "exp.yaml",
    "duplicate_parameter": "spec.yaml",
    "duplicate_inline_experiment_key": "spec.yaml",
    "duplicate_in_experiment_file": "exp.yaml",
}


def load_case(tmp_path: Path, yaml_text: str, overrides: list[str]):
    return load_sweep_spec(write_case(tmp_path, yaml_text), overrides)


def test_cases_are_many_and_all_have_a_given_value():
    ids = [case[0] for case in MALFORMED]
    # at least 30 distinct malformed inputs are covered
    assert len(set(ids)) == len(ids) >= 30
    # every case says what given text its message must show
    assert set(GIVEN) == set(ids)


@pytest.mark.parametrize(("case", "yaml_text", "overrides", "key"), MALFORMED,
                         ids=[case[0] for case in MALFORMED])
def test_malformed_spec_names_key_expectation_and_given(tmp_path, case, yaml_text, overrides,
                                                        key):
    with pytest.raises(InputError) as info:
        load_case(tmp_path, yaml_text, overrides)
    message = str(info.value)
    # the message starts with the key path of the problem
    assert message.startswith(f"{key}: expected "), message
    # the error's key attribute is that same path (the CLI and tests can rely on it)
    assert info.value.key == key
    # and it shows what was given
    assert GIVEN[case] in message, message
    # a problem with a whole file (or a key within one) names the file
    assert NAMES_FILE.get(case, "") in message, message


def test_unknown_key_lists_the_keys_allowed_there(tmp_path):
    with pytest.raises(InputError) as info:
        load_case(tmp_path, OK + "resources: {cpus: 2}\n", [])
    # a misspelt nested key is answered with the keys that section takes
    assert "one of: cpus_per_trial, trials_per_gpu, max_failures" in str(info.value)


def test_unknown_parameter_key_lists_the_keys_allowed_there(tmp_path):
    with pytest.raises(InputError) as info:
        load_case(tmp_path, OK + "parameters: {warm.intervnetion: {values: [dash]}}\n", [])
    # an unknown dotted key of the experiment lists the keys of its section
    assert "(one of: intervention, keep_optimizer" in str(info.value)


def test_several_schema_errors_are_all_reported(tmp_path):
    with pytest.raises(InputError) as info:
        load_case(tmp_path, OK + "method: fancy\nseeds: [-1]\n", [])
    lines = str(info.value).splitlines()
    # every bad key gets its own line, so one run of validate shows them all
    assert [line.split(":")[0] for line in lines] == ["method", "seeds.0"]


def test_valid_spec_with_every_section_loads(tmp_path):
    text = (
        "experiment: configs/batch_digits_logreg.yaml\n"
        "name: full-spec\n"
        "description: every section\n"
        "method: bayes\n"
        "metric: {name: gap, goal: minimize}\n"
        "parameters:\n"
        "  lr: {distribution: log_uniform_values, min: 0.001, max: 1.0}\n"
        "  warmup_steps: {min: 0, max: 100}\n"
        "  shrink: {distribution: q_uniform, min: 0.25, max: 1.0, q: 0.25}\n"
        "  warm.intervention: {values: [none, shrink_perturb]}\n"
        "  warm.perturb: {value: 0.01}\n"
        "seeds: [0, 1, 2]\n"
        "run_cap: 30\n"
        "early_terminate: {type: hyperband, max_iter: 27, s: 2, eta: 3}\n"
        "resources: {cpus_per_trial: 0.5, trials_per_gpu: 4, max_failures: 2}\n"
        "wandb: {project: p, entity: e, mode: offline, tags: [a, b]}\n"
        "gap_tolerance: 1.0\n"
    )
    resolved = load_case(tmp_path, text, ["protocol.stop.max_epochs=3"])
    # W&B's rule: min and max given as integers mean int_uniform
    assert resolved.spec.parameters["warmup_steps"].distribution == "int_uniform"
    # the override reaches the resolved experiment
    assert resolved.experiment["protocol"]["stop"]["max_epochs"] == 3
    # which came from the configs/ file
    assert resolved.experiment["data"]["name"] == "digits"
    # W&B's max_iter=27, s=2, eta=3 means bands at 3 and 9 finished stages
    assert resolved.spec.early_terminate.bands() == [3, 9]
    cfg = resolved.config_for({"lr": 0.5, "warm.intervention": "dash"}, seed=2)
    # a trial's config combines experiment, setting and seed
    assert (cfg.lr, cfg.warm.intervention, cfg.seed, cfg.protocol.stop.max_epochs) == (
        0.5, "dash", 2, 3)


def test_a_huge_value_given_makes_a_short_message(tmp_path):
    # ~1 kB of YAML aliases stands for 9**9 strings: the message shows the start of it, at
    # once, instead of spelling out all of them
    anchors = ["- &a0 [x, x, x, x, x, x, x, x, x]"] + [
        f"- &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    text = OK + "command:\n" + "\n".join("  " + a for a in anchors) + "\ndescription: *a8\n"
    with pytest.raises(InputError) as info:
        load_case(tmp_path, text, [])
    message = str(info.value)
    assert message.startswith("description: expected ") and "got [[[[...], [...]," in message
    assert len(message) < 10_000, len(message)


@pytest.mark.parametrize(("yaml_text", "where"), [
    (OK + "---\nmethod: grid\n", "at line 2, column 1"),
    (OK + "method:\tgrid\n", "at line 2, column 8"),
    ("experiment: !foo {lr: 1}\n", "at line 1, column 13"),
    (OK + "parameters: {lr: [0.1\n", "at line 3, column 1"),
], ids=["two_documents", "a_tab", "an_unknown_tag", "unclosed"])
def test_bad_yaml_is_one_line_saying_where(tmp_path, yaml_text, where):
    with pytest.raises(InputError) as info:
        load_case(tmp_path, yaml_text, [])
    message = str(info.value)
    # PyYAML's quoted lines and carets are folded into one line ending at the spot
    assert message.startswith("SPEC: expected valid YAML (") and "\n" not in message, message
    assert f"{where}), got " in message, message


def test_a_named_reference_on_a_grid_range_or_an_int_draw_is_accepted(tmp_path):
    grid = OK + "method: grid\nparameters: {optim.batch_size: {min: 32, max: 64}}\n"
    assert load_case(tmp_path, grid + "reference: {optim.batch_size: 40}\n", []).spec.reference
    drawn = RANDOM + "parameters: {optim.batch_size: {min: 32, max: 64}}\n"
    assert load_case(tmp_path, drawn + "reference: {optim.batch_size: 64}\n", []).spec.reference
