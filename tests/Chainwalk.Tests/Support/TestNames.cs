using Chainwalk.Net;

namespace Chainwalk.Tests.Support;

/// <summary>Name databases for tests: this machine's /etc files, plus the groups the corpus needs (java, ftp).</summary>
public static class TestNames
{
    public static NameDb System => NameDb.System;
}
