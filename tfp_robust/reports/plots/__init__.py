"""Figures (matplotlib, Agg backend): the paper's Figure 1 and friends.

- `gradients`: Figure 1 (gradient components by width and by model),
  Figures 2 and 3 (gradient heatmaps and strips against samples).
- `robustness`: decision regions, robustness curves, Figure 4.
- `mixing`: the sampler comparison, robustness against mixing, a chain's
  mixing trajectory.

Importing this package selects the Agg backend first, so figures render
without a display whichever module draws them.
"""

import matplotlib

matplotlib.use('Agg')
# pylint: disable=g-import-not-at-top,wrong-import-position
import matplotlib.pyplot as plt  # noqa: E402

from tfp_robust.reports.plots.gradients import gradient_components_by_model  # noqa: E402
from tfp_robust.reports.plots.gradients import gradient_components_by_width  # noqa: E402
from tfp_robust.reports.plots.gradients import gradient_heatmaps  # noqa: E402
from tfp_robust.reports.plots.gradients import gradient_strips  # noqa: E402
from tfp_robust.reports.plots.mixing import mixing_trajectory  # noqa: E402
from tfp_robust.reports.plots.mixing import robustness_against_mixing  # noqa: E402
from tfp_robust.reports.plots.mixing import sampler_comparison  # noqa: E402
from tfp_robust.reports.plots.robustness import decision_regions  # noqa: E402
from tfp_robust.reports.plots.robustness import figure4  # noqa: E402
from tfp_robust.reports.plots.robustness import robustness_curves  # noqa: E402
