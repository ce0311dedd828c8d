"""Model-group assets: what humans score on FER-2013 (the models and the report join them as they are built)."""

import json
import os

import dagster as dg
import pandas as pd
from pydantic import Field

from femo_pipeline import human_baseline as hb
from femo_pipeline.assets._meta import md_table
from femo_pipeline.files import write_text_atomic
from femo_pipeline.resources import PROJECT_ROOT, FemoStorage
from femo_pipeline.vocab import EMOTIONS

DEFAULT_VOTES = PROJECT_ROOT.parent / "shared" / "datasets" / "ferplus" / "ferplus_votes_by_file.csv"


class HumanBaselineConfig(dg.Config):
    votes_csv: str = Field(default=os.environ.get("FEMO_FERPLUS_VOTES") or str(DEFAULT_VOTES),
                           description="FER+ votes per FER-2013 file (FEMO_FERPLUS_VOTES); skipped when absent.")
    usages: list[str] = Field(default=["PublicTest", "PrivateTest"], description="FER-2013 usages to score on.")
    n_boot: int = Field(default=1000, description="Bootstrap resamples for the 95 % intervals.")
    seed: int = Field(default=0, description="Bootstrap seed.")


@dg.asset(group_name="model", kinds={"pandas", "json"})
def human_baseline(context: dg.AssetExecutionContext, config: HumanBaselineConfig, storage: FemoStorage) -> dg.MaterializeResult:
    """How often one FER+ annotator agrees with the FER-2013 label, and with the other nine, on the test images."""
    if not os.path.exists(config.votes_csv):
        reason = f"FER+ votes not found at {config.votes_csv} (set FEMO_FERPLUS_VOTES)"
        context.log.warning(f"human_baseline skipped: {reason}")
        return dg.MaterializeResult(metadata={"skipped": reason})
    try:
        votes = hb.read_votes(config.votes_csv)
    except hb.VotesFormatError as exc:
        raise dg.Failure(description=str(exc)) from exc
    chosen = votes[votes["usage"].isin(config.usages)]
    if chosen.empty:
        raise dg.Failure(description=f"no votes for usages {config.usages}; the file has {sorted(set(votes['usage']))}")
    summary = hb.summarise(chosen, n_boot=config.n_boot, seed=config.seed)
    summary["usages"] = config.usages
    summary["source"] = "FER+ crowd votes (Barsoum et al. 2016), 10 annotators per image, measured here"
    out = write_text_atomic(json.dumps(summary, indent=2), storage.path("reports", "human_baseline.json"))
    per_class = pd.DataFrame([{"emotion": EMOTIONS[k], "single_annotator_recall": round(v, 4)}
                              for k, v in summary["single_annotator_recall_per_fer2013_class"].items()])
    lo, hi = summary["single_annotator_vs_fer2013_label_ci95"]
    lo9, hi9 = summary["single_annotator_vs_other_nine_ci95"]
    context.log.info(f"human baseline on {summary['images']} images: {summary['single_annotator_vs_fer2013_label']:.3f}")
    return dg.MaterializeResult(metadata={
        "images": summary["images"],
        "votes": summary["votes"],
        "single_annotator_vs_fer2013_label": f"{summary['single_annotator_vs_fer2013_label']:.1%} (95 % CI {lo:.1%}-{hi:.1%})",
        "single_annotator_vs_other_nine": f"{summary['single_annotator_vs_other_nine']:.1%} (95 % CI {lo9:.1%}-{hi9:.1%})",
        "ferplus_plurality_vs_fer2013_label": round(summary["ferplus_plurality_vs_fer2013_label"], 4),
        "per_class": md_table(per_class),
        "report": dg.MetadataValue.path(str(out)),
    })
