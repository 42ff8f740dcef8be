# Sourced by the build scripts: wrapper() makes a Go module that builds main packages of a
# published module, with that module's replace lines mapped onto published modules.
# k8s_ldflags VERSION: the linker flags a Kubernetes binary reports its version with
k8s_ldflags() {
  local v=$1 major minor flags="-s -w" p
  major=${v#v}; major=${major%%.*}
  minor=${v#v*.}; minor=${minor%%.*}
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $p.gitVersion=$v -X $p.gitMajor=$major -X $p.gitMinor=$minor"
    flags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$flags"
}

# A wrapper module that builds main packages of a module whose go.mod replaces its own
# sub-modules with local paths: map every such replace onto the published module.
# $1 module, $2 version, $3 version of the replaced sub-modules, $4 sed filter for replace targets
wrapper() {
  local module=$1 version=$2 subversion=$3 dir=$4
  mkdir -p "$dir"
  (cd "$dir" && go mod init hashroll.local/wrap >/dev/null 2>&1)
  local gomod
  gomod=$(cd "$dir" && go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
  [ -f "$gomod" ] || { echo "cannot download go.mod of $module@$version" >&2; exit 1; }
  # replace lines look like:  k8s.io/api => ./staging/src/k8s.io/api   (in a block or single)
  local mods
  mods=$(sed -n 's/^[[:space:]]*\(replace[[:space:]]\+\)\{0,1\}\([^[:space:]]\+\)[[:space:]]\+=>[[:space:]]\+\.\{1,2\}\/.*$/\2/p' "$gomod")
  local args=()
  for m in $mods; do
    local v=$subversion
    [ "$m" = "$module" ] && v=$version
    args+=("-replace=$m=$m@$v")
  done
  # also the module's own non-local replaces (pinned forks), copied as they are
  while read -r line; do
    args+=("-replace=$line")
  done < <(sed -n 's/^[[:space:]]*\(replace[[:space:]]\+\)\{0,1\}\([^[:space:]]\+\( v[^[:space:]]\+\)\{0,1\}\)[[:space:]]\+=>[[:space:]]\+\([^.][^[:space:]]*[[:space:]]\+v[^[:space:]]\+\)$/\2=\4/p' "$gomod" | sed 's/ v/@v/g; s/ //g')
  if [ ${#args[@]} -gt 0 ]; then (cd "$dir" && go mod edit "${args[@]}"); fi
}

