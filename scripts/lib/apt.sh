# Sourced by the scripts: ensure_debs TAG PKG... installs the Debian packages that are missing
# (apt-get, with sudo when not root) and prints "TAG: installing ..." when it does.
ensure_debs() {
    local tag=$1 p missing=() sudo_cmd=""
    shift
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "$tag: installing ${missing[*]}"
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
}
