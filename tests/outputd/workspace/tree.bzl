"""A tree artifact (ctx.actions.declare_directory) with files in nested
directories whose contents a test can predict: DIR/dN/sub/fM.txt holds
"tree N M" and a line of N*M dots."""

def _tree_impl(ctx):
    out = ctx.actions.declare_directory(ctx.attr.name)
    ctx.actions.run_shell(
        outputs = [out],
        inputs = [ctx.file.seed],
        command = """
set -eu
out=$1
seed=$2
for n in $(seq 1 {dirs}); do
    mkdir -p "$out/d$n/sub"
    for m in $(seq 1 {files}); do
        {{ echo "tree $n $m"; printf '%*s\\n' $((n * m)) '' | tr ' ' .; }} >"$out/d$n/sub/f$m.txt"
    done
    cp "$seed" "$out/d$n/seed.txt"
done
echo "{dirs} dirs, {files} files each" >"$out/MANIFEST"
""".format(dirs = ctx.attr.dirs, files = ctx.attr.files),
        arguments = [out.path, ctx.file.seed.path],
        mnemonic = "TreeGen",
        progress_message = "Generating tree %{label}",
    )
    return [DefaultInfo(files = depset([out]))]

tree = rule(
    implementation = _tree_impl,
    attrs = {
        "seed": attr.label(allow_single_file = True, mandatory = True),
        "dirs": attr.int(default = 6),
        "files": attr.int(default = 6),
    },
)
