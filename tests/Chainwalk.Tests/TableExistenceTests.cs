using Chainwalk.Host;
using Chainwalk.Net;
using Xunit;

namespace Chainwalk.Tests;

/// <summary>
/// Which commands create a table. iptables-save (nf_tables) prints only the tables that exist, and with
/// iptables-nft 1.8.9 a table comes into existence only when a command puts something into it: checked with the
/// real tool (see the table-* cases of golden/errors/cases.json, recorded by tests/tools/record-error-goldens.py).
/// </summary>
public sealed class TableExistenceTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "cw-tables-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    [Theory]
    [InlineData("iptables -t nat -L", false)]
    [InlineData("iptables -t nat -L -n -v -x --line-numbers", false)]
    [InlineData("iptables -t nat -S", false)]
    [InlineData("iptables -t nat -L PREROUTING", false)]
    [InlineData("iptables -t nat -F", false)]
    [InlineData("iptables -t nat -Z", false)]
    [InlineData("iptables -t nat -Z -v", false)]
    [InlineData("iptables -t nat -X", false)]
    [InlineData("iptables -t nat -C OUTPUT -j ACCEPT", false)]
    [InlineData("iptables -t nat -D OUTPUT -j ACCEPT", false)]
    [InlineData("iptables -t nat -D OUTPUT 1", false)]
    [InlineData("iptables -t nat -E X Y", false)]
    [InlineData("iptables -t nat -I OUTPUT 2 -j ACCEPT", false)]
    [InlineData("iptables -t nat -F PREROUTING", true)]
    [InlineData("iptables -t nat -N X", true)]
    [InlineData("iptables -t nat -P OUTPUT ACCEPT", true)]
    [InlineData("iptables -t nat -A OUTPUT -j ACCEPT", true)]
    [InlineData("iptables -t nat -I OUTPUT -j ACCEPT", true)]
    public void Only_commands_that_add_something_create_the_table(string command, bool created)
    {
        var store = new HostStore(_dir);
        ErrorGoldenTests.RunTool(store, command.Split(' '), null);
        string saved = ErrorGoldenTests.State(store, IpFamily.V4);
        Assert.Equal(created, saved.Contains("*nat\n", StringComparison.Ordinal));
        // Nothing else appears either.
        Assert.DoesNotContain("*filter\n", saved, StringComparison.Ordinal);
    }

    [Fact]
    public void Deleting_the_last_user_chain_keeps_the_table()
    {
        var store = new HostStore(_dir);
        Assert.Equal(0, ErrorGoldenTests.RunTool(store, ["iptables", "-t", "nat", "-N", "X"], null).Exit);
        Assert.Equal(0, ErrorGoldenTests.RunTool(store, ["iptables", "-t", "nat", "-X", "X"], null).Exit);
        Assert.Equal(
            "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n",
            ErrorGoldenTests.State(store, IpFamily.V4));
    }

    [Fact]
    public void A_restore_block_without_chains_or_rules_does_not_create_the_table()
    {
        var store = new HostStore(_dir);
        Assert.Equal(0, ErrorGoldenTests.RunTool(store, ["iptables-restore"], "*nat\nCOMMIT\n").Exit);
        Assert.Equal(string.Empty, ErrorGoldenTests.State(store, IpFamily.V4));
        Assert.Equal(0, ErrorGoldenTests.RunTool(store, ["iptables-restore"], "*nat\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n").Exit);
        Assert.StartsWith("*nat\n", ErrorGoldenTests.State(store, IpFamily.V4), StringComparison.Ordinal);
    }

    [Fact]
    public void List_and_zero_of_a_missing_table_lists_then_fails_like_iptables_nft()
    {
        var store = new HostStore(_dir);
        var (exit, output, err) = ErrorGoldenTests.RunTool(store, ["iptables", "-t", "raw", "-L", "-Z", "-v"], null);
        Assert.Equal(4, exit);
        Assert.StartsWith("Chain PREROUTING (policy ACCEPT 0 packets, 0 bytes)\n", output, StringComparison.Ordinal);
        Assert.EndsWith("Zeroing chain `PREROUTING'\nZeroing chain `OUTPUT'\n", output, StringComparison.Ordinal);
        Assert.Equal("iptables v1.8.9 (nf_tables):  CHAIN_ZERO failed (No such file or directory): chain PREROUTING\n", err);
        Assert.Equal(string.Empty, ErrorGoldenTests.State(store, IpFamily.V4));
    }
}
