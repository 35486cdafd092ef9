"""Check the built site shows what the book promises: Fig. 3's four panels, Fig. 4, Table 2 and Table 3."""
import re
import sys
from pathlib import Path

site = Path(sys.argv[1] if len(sys.argv) > 1 else "_build/html")


def page(name: str) -> str:
    path = site / f"{name}.html"
    if not path.exists():
        sys.exit(f"missing page {path}")
    return path.read_text()


def images(html: str) -> int:
    return len(re.findall(r"<img [^>]*src=\"[^\"]+\.png\"", html))


problems = []
fig3 = page("fig3")
if images(fig3) < 1:
    problems.append("fig3: no figure")
panels = re.search(r"panels: ([^<\n]+)", fig3)
if not panels or len(panels.group(1).split(";")) != 4:
    problems.append(f"fig3: expected four panels, found {panels.group(1) if panels else 'none'}")
if images(page("fig4")) < 1:
    problems.append("fig4: no figure")
for name, needle in (("table2", "ms / proposal"), ("table3", "ours / paper")):
    html = page(name)
    if "<table" not in html or needle not in html:
        problems.append(f"{name}: no table with '{needle}'")
for name in ("ballistics", "sine_wave", "robotic_arm", "meta_material", "results", "time", "ablations", "user_task"):
    if "<table" not in page(name) and images(page(name)) == 0:
        problems.append(f"{name}: neither a table nor a figure")
if problems:
    sys.exit("site check failed:\n  " + "\n  ".join(problems))
print(f"site check: Fig. 3 ({panels.group(1).strip()}), Fig. 4, Table 2 and Table 3 present in {site}")
