using Chainwalk.Compat;
using Chainwalk.Host;
using Chainwalk.Net;
using Xunit;

namespace Chainwalk.Tests;

/// <summary>
/// The host keeps rules as iptables-save text. A rule whose save form does not load back (iptables prints it
/// so, and the real iptables-restore would choke on it too) is refused with a clear message, and nothing changes.
/// </summary>
public class HostStoreRoundTripTests
{
    private static (int Rc, string Err, string Dir) Run(Func<HostStore, ToolIo, int> tool, string stdin = "")
    {
        string dir = Directory.CreateTempSubdirectory("cw-rt-").FullName;
        var err = new StringWriter();
        var io = new ToolIo { In = new StringReader(stdin), Out = new StringWriter(), Err = err };
        return (tool(new HostStore(dir), io), err.ToString(), dir);
    }

    [Fact]
    public void Restored_comment_with_a_newline_is_refused_and_changes_nothing()
    {
        var (rc, err, dir) = Run((s, io) => IptablesCompat.Restore(IpFamily.V4, ["iptables-restore"], s, io),
            "*filter\n-A INPUT -m comment --comment \"abc -j ACCEPT\nCOMMIT\n");
        Assert.Equal(1, rc);
        Assert.StartsWith("chainwalk: not stored", err, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(dir, HostStore.RulesFile(IpFamily.V4))));
    }

    [Fact]
    public void Idletimer_label_with_a_space_is_refused_and_changes_nothing()
    {
        var (rc, err, dir) = Run((s, io) => IptablesCompat.Run(IpFamily.V4,
            ["iptables", "-A", "INPUT", "-j", "IDLETIMER", "--timeout", "5", "--label", "a b"], s, io));
        Assert.Equal(1, rc);
        Assert.StartsWith("chainwalk: not stored", err, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(dir, HostStore.RulesFile(IpFamily.V4))));
    }
}
