"""The evaluation card on disk: card.json, card.md and its figures.

`write(card, workdir)` writes, atomically, `card.json` (the dict
`card.evaluate` returns), `card.md` (for people) and beside it
`reliability.png` and `robustness.png`; a baseline's card goes to
`<workdir>/baseline/` and into a side-by-side table at the top of card.md.
"""

import os
from typing import Dict, List

from tfp_robust.evaluation import calibration
from tfp_robust.core import files
from tfp_robust.reports import tables as reports


def _number(value, digits=3):
  return 'not available' if value is None else f'{value:.{digits}f}'


def _spread_text(spread) -> str:
  if len(spread['values']) < 2:
    return ''
  return (f"worst of {len(spread['values'])}: {spread['worst']:.3f} "
          f"(mean {spread['mean']:.3f}, sd {spread['std']:.3f}, best "
          f"{spread['best']:.3f})")


def _count(value) -> str:
  return f'{value:,.0f}' if value >= 10 else f'{value:.2g}'


def side_by_side(card: Dict, other: Dict) -> List[str]:
  """Markdown rows comparing two cards on the headline numbers."""
  lines = [f"| | {card['model']} | {other['model']} |", '|---|---|---|']
  for key, label in (('clean_accuracy', 'clean accuracy'), ('nll', 'NLL'),
                     ('ece', 'ECE'), ('brier', 'Brier')):
    lines.append(f'| {label} | {card[key]:.3f} | {other[key]:.3f} |')
  for mine, theirs in zip(card['robust'], other['robust']):
    lines.append(
        f"| eps {mine['eps']:g}: attacked / certified | "
        f"{mine['accuracy']:.3f} / {_number(mine['certified'])} "
        f"({mine['status']}) | {theirs['accuracy']:.3f} / "
        f"{_number(theirs['certified'])} ({theirs['status']}) |")
  return lines


def markdown(card: Dict) -> str:
  """The card for people."""
  data = card['data']
  low, high = data['input_range']
  resampled = card['resamples']
  settings = card['settings']
  attack = settings['attack']
  out = [f"# Evaluation card: {card['model']}", '',
         f"Model: {card['method']}, {card['num_samples']} "
         f"{'calls per evaluation, resampled on every call' if resampled else 'posterior sample' + ('s' if card['num_samples'] > 1 else '')}"
         f", input shape {tuple(card['input_shape'])}, {card['num_classes']} "
         f"classes. Data: {data['name']}, {data['num_points']} test points, "
         f'inputs in [{low:g}, {high:g}] (eps in these units)' +
         (f", normalised inside the model by mean {data['normalization'][0]} "
          f"and std {data['normalization'][1]}" if data['normalization']
          else '') + f". Wall time {card['wall_seconds']:.1f} s, "
         f"{card['model_evaluations']:,} (sample, input) model evaluations.",
         '']
  if 'baseline' in card:
    out += ['## Beside the baseline', ''] + side_by_side(
        card, card['baseline']) + ['', 'The baseline\'s own card: '
                                   '[baseline/card.md](baseline/card.md).', '']
  out += ['## Clean predictive', '',
          '| accuracy | NLL | ECE (15 bins) | Brier |', '|---|---|---|---|',
          f"| {card['clean_accuracy']:.3f} | {card['nll']:.3f} | "
          f"{card['ece']:.3f} | {card['brier']:.3f} |", '']
  if resampled:
    out += [f"Accuracy is the {_spread_text(card['clean_spread'])} "
            'independent evaluations; NLL, ECE and Brier their means.', '']
  out += ['![reliability diagram](reliability.png)', '',
          '## Robustness (L-infinity)', '',
          f"Attacked accuracy is the worst case per image over the "
          f"{attack.get('protocol', 'strong')} protocol's attacks; certified "
          'accuracy is a lower bound no attack can beat, so the robust '
          'accuracy lies between. Status: *robust* when the certificate '
          'is within max(0.02, 1/points) of the attacks, *not robust* '
          'when the attacks flip at least half of the correct '
          'predictions, *undecided* otherwise.', '',
          '| eps | attacked accuracy | certified | status | strongest attack |',
          '|---|---|---|---|---|']
  for entry in card['robust']:
    bound = (f"{entry['certified']:.3f} ({entry['certify_method']})"
             if entry['certified'] is not None else 'not available')
    out.append(f"| {entry['eps']:g} | {entry['accuracy']:.3f} | {bound} | "
               f"{entry['status']}: {entry['status_text']} | "
               f"{entry['strongest_attack']} |")
  notes = {e['certified_note'] for e in card['robust'] if e['certified_note']}
  out += [''] + [f'Certified accuracy not available: {n}.' for n in notes]
  if resampled:
    out += ['', f"The model resamples on every call: gradient attacks use "
            f"expectation over transformation ({settings['eot_iter']} calls "
            f"averaged per APGD gradient), Square's margin is that of the "
            f"predictive over {settings['square_eot']} x "
            f"{card['num_samples']} resampled calls, and every accuracy is "
            f"the worst of {settings['repeats']} independent evaluations "
            '(spread below).']
  out += ['', '![robustness against eps](robustness.png)', '']
  for entry in card['robust']:
    if not entry['attacks']:
      continue
    out += [f"### Attacks at eps = {entry['eps']:g}", '',
            '| attack | loss | accuracy | spread | EOT | seconds | '
            'model evaluations | per image and sample |',
            '|---|---|---|---|---|---|---|---|']
    for a in entry['attacks'] + [dict(
        attack='worst_case', loss='all', accuracy=entry['accuracy'],
        spread=entry['spread'], eot='', seconds=None, model_evaluations=None,
        predictive_evaluations_per_image=None)]:
      out.append(
          f"| {a['attack']} | {a['loss']} | {a['accuracy']:.3f} | "
          f"{_spread_text(a['spread']) or '-'} | {a['eot']} | "
          f"{'' if a['seconds'] is None else format(a['seconds'], '.1f')} | "
          f"{'' if a['model_evaluations'] is None else format(a['model_evaluations'], ',')} | "
          f"{'' if a['predictive_evaluations_per_image'] is None else _count(a['predictive_evaluations_per_image'])} |")
    out.append('')
  out += ['## Checks', '',
          'A failed check is a reason to distrust the numbers above '
          '(gradient masking, a weak attack); passing them all is no proof '
          'of robustness.', '', '| check | eps | result | evidence |',
          '|---|---|---|---|']
  for finding in card['checks']:
    eps = '' if finding['eps'] is None else f"{finding['eps']:g}"
    out.append(f"| {finding['name']} | {eps} | "
               f"{'ok' if finding['passed'] else '**FAILED**'} | "
               f"{finding['evidence']} |")
  if card['mcmc']:
    out += ['', '## MCMC diagnostics', '', '| diagnostic | value |',
            '|---|---|']
    out += [f'| {k} | {v:.4g} |' for k, v in sorted(card['mcmc'].items())]
    rhat = card['mcmc'].get('fn_rhat_max')
    if rhat is not None and rhat > 1.1:
      out += ['', f'The chains have not mixed (function-space R-hat {rhat:.2f}'
              ' > 1.1): the numbers above describe where the sampler is, '
              'not the posterior.']
  out += ['', '## Settings', '',
          f"APGD {attack.get('apgd_steps')} steps x "
          f"{attack.get('apgd_restarts')} restarts per loss, APGD-T targets "
          f"{attack.get('apgd_targets')}, Square {attack.get('square_queries')}"
          f" queries, PGD {attack.get('pgd_steps')} steps; seed "
          f"{settings['seed']}. 'model evaluations' counts forward passes of "
          "one posterior sample on one input (an input gradient counts "
          "once); 'per image and sample' divides them by the points and "
          'the samples (for Square about its queries, times the EOT).', '']
  return '\n'.join(out)


def robustness_figure(card: Dict, path: str) -> None:
  """Attacked and certified accuracy against eps (a baseline dashed)."""
  from tfp_robust.reports import plots  # pylint: disable=g-import-not-at-top,unused-import  # Agg.
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  figure, axis = plt.subplots(figsize=(5, 3.6))
  for entry, style in ((card, '-'), (card.get('baseline'), '--')):
    if entry is None:
      continue
    eps = [r['eps'] for r in entry['robust']]
    axis.plot(eps, [r['accuracy'] for r in entry['robust']], 'o' + style,
              color='tab:red', label=f"{entry['model']}: attacked")
    bounds = [(r['eps'], r['certified']) for r in entry['robust']
              if r['certified'] is not None]
    if bounds:
      axis.plot(*zip(*bounds), 's' + style, color='tab:blue',
                label=f"{entry['model']}: certified")
  axis.set_xlabel(f"eps (L-infinity, data units)")
  axis.set_ylabel('accuracy')
  axis.set_ylim(-0.02, 1.02)
  axis.set_title('Robust accuracy lies between certified and attacked')
  axis.legend(fontsize=7)
  reports.save_figure(figure, path)


def write(card: Dict, workdir: str) -> str:
  """card.json, card.md and the figures into `workdir`; returns card.md."""
  os.makedirs(workdir, exist_ok=True)
  if 'baseline' in card:
    write(card['baseline'], os.path.join(workdir, 'baseline'))
  calibration.reliability_diagram(
      {'bins': card['reliability'], 'ece': card['ece']},
      os.path.join(workdir, 'reliability.png'))
  robustness_figure(card, os.path.join(workdir, 'robustness.png'))
  reports.write_json(os.path.join(workdir, 'card.json'), card)
  path = os.path.join(workdir, 'card.md')
  files.write_text_atomically(path, markdown(card))
  return path
