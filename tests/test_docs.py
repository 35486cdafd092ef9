"""The book's prose tables of settings must say what the code does."""
from pathlib import Path

from inverse_lib import profiles

ROOT = Path(__file__).resolve().parent.parent


def profile_cells(p: profiles.Profile) -> dict[str, str]:
    e, d4 = p.epochs, p.d4_epochs
    return {
        "epochs": f"NA {e['na']}, Tandem {e['tandem']} (each phase), cVAE {e['cvae']}, INN {e['inn']}, "
                  f"cINN {e['cinn']}, MDN {e['mdn']}",
        "D4 epochs": f"NA {d4['na']}, Tandem {d4['tandem']}, cVAE {d4['cvae']}, cINN {d4['cinn']}, MDN {d4['mdn']}",
        "NA pool / steps": f"{p.na_pool:,} / {p.na_steps} (D4 {p.d4_na_steps})",
        "D4 proxy": f"{p.proxy_designs:,} designs, {p.proxy_members} members, {p.proxy_epochs} epochs, "
                    f"batch {p.proxy_batch}",
        "learning-rate schedule": {"plateau": "the authors' ReduceLROnPlateau",
                                   "cosine": "cosine annealing to 0 over the epochs"}[p.schedule],
    }


def test_the_quick_profile_table_matches_the_code():
    text = (ROOT / "book" / "differences.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    p = profiles.get("quick")
    for setting, cell in profile_cells(p).items():
        assert setting in rows, f"differences.md has no row {setting!r}"
        assert rows[setting].rstrip().rstrip("|").rstrip().endswith(cell), (setting, cell, rows[setting])
