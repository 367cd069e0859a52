using System.Text;
using Chainwalk.Compat;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Tests.Support;
using Xunit;

namespace Chainwalk.Tests;

/// <summary>
/// nfacct objects and -m nfacct rules: the command list of golden/nfacct/commands.txt run on a fresh host must
/// print what the real nfacct 1.0.2 and iptables 1.8.9 printed (golden/nfacct/transcript.txt, recorded in a
/// network namespace by tests/tools/record-nfacct.sh).
/// </summary>
public class NfacctCompatTests
{
    [Fact]
    public void Transcript_matches_the_real_tools()
    {
        string dir = Path.Combine(TestPaths.Golden, "nfacct");
        var store = new HostStore(Directory.CreateTempSubdirectory("cw-nfacct-").FullName);
        var sb = new StringBuilder();
        foreach (string line in File.ReadAllLines(Path.Combine(dir, "commands.txt")))
        {
            string[] argv = line.Split(' ');
            var both = new StringWriter();
            var io = new ToolIo { In = TextReader.Null, Out = both, Err = both };
            int rc = argv[0] switch
            {
                "nfacct" => NfacctCompat.Run(argv, store, io),
                "iptables" => IptablesCompat.Run(IpFamily.V4, argv, store, io),
                _ => throw new InvalidOperationException(argv[0]),
            };
            sb.Append("$ ").Append(line).Append('\n').Append(both.ToString()).Append("[rc ").Append(rc).Append("]\n");
        }
        Assert.Equal(File.ReadAllText(Path.Combine(dir, "transcript.txt")), sb.ToString());
    }
}
