"""Build the one jar Spark's Iceberg runtime lacks: pyspark's Jackson, relocated where that runtime looks.

`iceberg-spark-runtime-3.5_2.12-1.10.2.jar` (from the snowpark-connect-deps-iceberg wheel) calls
`org.apache.iceberg.shaded.com.fasterxml.jackson...` but ships without those classes. pyspark carries
jackson-core/databind/annotations 2.15.2; Debian's jarjar renames their packages. Run by `make spark`
(only when the jar is missing): `python infra/spark/relocate_jackson.py [OUT]`.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

JARJAR = Path("/usr/share/java/jarjar.jar")  # Debian's libjarjar-java
MODULES = ("jackson-core", "jackson-databind", "jackson-annotations")
RULE = "rule com.fasterxml.jackson.** org.apache.iceberg.shaded.com.fasterxml.jackson.@1\n"


def _skip(name: str) -> bool:
    # jarjar's ASM cannot read Java 9+ module descriptors or multi-release class versions, and
    # service files would name the unrelocated classes: leave all three out (Java 8 classes suffice).
    return name.endswith("module-info.class") or name.startswith(("META-INF/versions/", "META-INF/services/"))


def build(out: Path) -> Path:
    import pyspark

    from lakehouse.spark import JACKSON_VERSION

    jars = Path(pyspark.__file__).parent / "jars"
    sources = [jars / f"{m}-{JACKSON_VERSION}.jar" for m in MODULES]
    missing = [str(s) for s in sources if not s.is_file()]
    if missing:
        sys.exit(f"pyspark's Jackson jars are missing ({', '.join(missing)}): reinstall pyspark from constraints.txt")
    if not JARJAR.is_file():
        sys.exit(f"{JARJAR} is missing: apt-get install libjarjar-java (make sysdeps)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        merged, rules, built = Path(tmp) / "merged.jar", Path(tmp) / "rules.txt", Path(tmp) / "out.jar"
        seen: set[str] = set()
        with zipfile.ZipFile(merged, "w", zipfile.ZIP_DEFLATED) as dst:
            for src in sources:
                with zipfile.ZipFile(src) as zf:
                    for info in zf.infolist():
                        if info.filename in seen or _skip(info.filename):
                            continue
                        seen.add(info.filename)
                        dst.writestr(info, zf.read(info))
        rules.write_text(RULE)
        subprocess.run(["java", "-jar", str(JARJAR), "process", str(rules), str(merged), str(built)], check=True)
        with zipfile.ZipFile(built) as zf:
            if "org/apache/iceberg/shaded/com/fasterxml/jackson/core/JsonFactoryBuilder.class" not in zf.NameToInfo:
                sys.exit("jarjar ran but the relocated JsonFactoryBuilder is not in its output")
        built.replace(out)  # whole or not at all: make rebuilds only a missing jar
    return out


if __name__ == "__main__":
    from lakehouse.spark import JACKSON_JAR

    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else JACKSON_JAR))
