/** The report section of a detection study (Wen et al.'s and Ren et al.'s detectors: ROC, AUC, TPR at 1 % FPR). */
import type { DetectResult } from '../detect.ts';
import { lineChart } from '../../report/line.ts';
import { fmt, table } from '../../report/html.ts';
import type { Section } from '../../report/section.ts';

/** The ROC figure and the detector table of a detection result; `intro` is trusted HTML (default none). */
export function detectSection(r: DetectResult, intro = ''): Section {
  const colors = ['#d62728', '#1f77b4', '#2ca02c'];
  return {
    head: [intro, table(['detector', 'AUC [95 % interval]', 'TPR @ 1 % FPR', 'TPR @ 3 / 5 / 10 % FPR', 'extra seconds', 'definition'], r.detectors.map((x) => [x.name, x.aucText, x.tprAt1Text, x.tprAtFprs.slice(1).map((t) => t.text.startsWith('inconclusive') ? t.text : t.tpr.toFixed(3)).join(' / '), fmt(x.seconds), x.description]))].filter((s) => s).join('\n'),
    figures: [
      {
        name: 'roc',
        caption: 'ROC curves',
        width: 560,
        spec: lineChart({
          title: 'ROC of memorization detectors',
          xLabel: 'false positive rate',
          yLabel: 'true positive rate',
          series: [
            ...r.detectors.map((x, i) => ({ label: `${x.name} (AUC ${fmt(x.auc)} [${fmt(x.aucInterval.lo)}, ${fmt(x.aucInterval.hi)}], ${x.positives}+${x.negatives} prompts)`, x: x.roc.fpr, y: x.roc.tpr, color: colors[i % 3]! })),
            { label: 'chance', x: [0, 1], y: [0, 1], color: '#7f7f7f', dashed: true, width: 1 },
          ],
        }),
      },
    ],
  };
}
