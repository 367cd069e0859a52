#!/bin/sh
# Prints the netfilter .t agreement figure (Chainwalk vs the recorded real iptables 1.8.9), e.g. for CI logs.
# Details: tests/Chainwalk.Tests/TestResults/netfilter-tfiles-differences.txt and netfilter-tfiles-stderr.txt.
# Add --all to print every file's differing lines as well.
set -e
cd "$(dirname "$0")/../Chainwalk.Tests"
dotnet test --filter "FullyQualifiedName~NetfilterTFileTests.Agreement_figure" >/dev/null
if [ "$1" = "--all" ]; then cat TestResults/netfilter-tfiles-differences.txt; else cat TestResults/netfilter-tfiles.txt; fi
