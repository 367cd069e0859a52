using Chainwalk.Compat;
using Chainwalk.Host;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests;

/// <summary>
/// sysctl -p, which the transcripts (golden/sysctl) cannot cover because it reads a file. The expected
/// text is what procps 4.0.2 printed for the same file in a network namespace.
/// </summary>
public class SysctlCompatTests
{
    [Fact]
    public void Load_reports_syntax_errors_first_then_applies_each_setting()
    {
        string hostDir = Directory.CreateTempSubdirectory("cw-sysctl-").FullName;
        try
        {
            string conf = Path.Combine(hostDir, "s.conf");
            File.WriteAllText(conf, "net.ipv4.ip_forward = 1\n# c\n; d\nnet.ipv4.nosuch=3\n  net.ipv4.conf.all.rp_filter=1  \nbad line\n");
            var both = new StringWriter { NewLine = "\n" };
            var io = new ToolIo { In = TextReader.Null, Out = both, Err = both };
            var store = new HostStore(hostDir);
            SysctlCompat.Run(["sysctl", "-p", conf], store, io).ShouldBe(1);
            both.ToString().ShouldBe($"""
sysctl: {conf}(6): invalid syntax, continuing...
net.ipv4.ip_forward = 1
sysctl: cannot stat /proc/sys/net/ipv4/nosuch: No such file or directory
net.ipv4.conf.all.rp_filter = 1

""");
            store.Load().GetSysctl("net.ipv4.conf.all.rp_filter").ShouldBe("1");
            var err = new StringWriter { NewLine = "\n" };
            SysctlCompat.Run(["sysctl", "-p", "/nonexistent"], store, new ToolIo { In = TextReader.Null, Out = err, Err = err }).ShouldBe(1);
            err.ToString().ShouldBe("sysctl: cannot open \"/nonexistent\": No such file or directory\n");
        }
        finally
        {
            Directory.Delete(hostDir, recursive: true);
        }
    }
}
