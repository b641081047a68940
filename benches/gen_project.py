#!/usr/bin/env python3
"""Write a clnrm project of N tests for benchmarks: half plain TOML, half templates
that share a macro library (nested loops and macro calls).
Usage: gen_project.py N OUT [IMAGE]   (IMAGE defaults to the fixture image)"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "data", "step_macro.tera")) as macro_file:
    STEP_MACRO = macro_file.read()

MACROS = """{# shared by the generated templates #}
{% macro service(name, image) -%}
[service.{{ name }}]
image = "{{ image }}"
env = { ROLE = "{{ name }}" }
{%- endmacro service %}

""" + STEP_MACRO

PLAIN = """[meta]
name = "plain_{i}"
version = "1.0"
description = "generated plain test {i}"

[service.app]
image = "{image}"
env = {{ INDEX = "{i}" }}

[[steps]]
name = "write"
command = ["sh", "-c", "mkdir -p /tmp && echo {i} > /tmp/i"]

[[steps]]
name = "read"
command = ["cat", "/tmp/i"]
expected_output_regex = "^{i}$"
"""

TEMPLATE = """{{% import "lib/_macros.tera" as m %}}
[meta]
name = "tmpl_{i}_{{{{ svc }}}}"
version = "1.0"

{{{{ m::service(name="app", image=image) }}}}
{{{{ m::service(name="db", image=image) }}}}

{{% for outer in range(end=3) %}}{{% for inner in range(end=3) %}}
{{{{ m::step(name="s_" ~ outer ~ "_" ~ inner, service="app", text="v" ~ outer ~ inner) }}}}
{{% endfor %}}{{% endfor %}}
"""


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    count, out = int(sys.argv[1]), sys.argv[2]
    image = sys.argv[3] if len(sys.argv) == 4 else "clnrm-fixture/busybox:latest"
    os.makedirs(os.path.join(out, "tests", "lib"), exist_ok=True)
    with open(os.path.join(out, "cleanroom.toml"), "w") as f:
        f.write(f'[vars]\nimage = "{image}"\n')
    with open(os.path.join(out, "tests", "lib", "_macros.tera"), "w") as f:
        f.write(MACROS)
    for i in range(count):
        group = os.path.join(out, "tests", f"g{i % 20:02}")
        os.makedirs(group, exist_ok=True)
        if i % 2 == 0:
            path, text = os.path.join(group, f"t{i:04}.clnrm.toml"), PLAIN.format(i=i, image=image)
        else:
            path = os.path.join(group, f"t{i:04}.clnrm.toml.tera")
            text = TEMPLATE.format(i=i)
        with open(path, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
