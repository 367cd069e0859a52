using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;
using Xunit;

namespace Chainwalk.Tests;

/// <summary>
/// The host store skips the second parse of a rule whose parts all reload exactly (SaveFormCheck.ReloadsExactly).
/// That claim is checked here against the second parse itself, over many rules; rules outside it are parsed again.
/// </summary>
public class SaveFormCheckTests
{
    [Fact]
    public void Rules_taken_as_reloading_exactly_do_reload_exactly()
    {
        var rnd = new Random(11);
        string[] options =
        [
            "-s 10.1.2.3", "-s 10.0.0.0/8", "-s 1.2.3.4/255.0.255.0", "-d 192.168.1.0/24", "! -d 10.0.0.0/8", "! -s 1.1.1.1",
            "-i eth0", "-i eth+", "! -i lo", "-o eth1.5", "-o br-x_1", "-p tcp", "-p udp", "-p icmp", "! -p tcp", "-m tcp", "-m udp",
            "--sport 53", "--dport 80", "--dport 1000:2000", "! --sport 0:65535", "! --dport 22", "--syn", "! --syn",
            "--tcp-flags SYN,ACK SYN", "--tcp-option 8", "! --tcp-option 2", "-j ACCEPT", "-j DROP", "-j RETURN", "-j X", "-g X",
        ];
        var reader = new RestoreReader(IpFamily.V4, "iptables-restore");
        int proven = 0;
        for (int n = 0; n < 3000; n++)
        {
            var words = new List<string> { "iptables-restore", "-t", "filter", "-A", "FORWARD" };
            int count = rnd.Next(0, 7);
            for (int i = 0; i < count; i++) words.AddRange(options[rnd.Next(options.Length)].Split(' '));
            ParsedCommand cmd;
            try
            {
                cmd = new CommandLineParser(IpFamily.V4, "iptables-restore", restore: true).Parse([.. words]);
            }
            catch (XtablesException)
            {
                continue;
            }
            Rule rule = cmd.Rules[0];
            if (!SaveFormCheck.ReloadsExactly(rule, "FORWARD")) continue;
            proven++;
            string body = RuleWriter.SaveBody(rule);
            Assert.True(SaveFormCheck.Reload(IpFamily.V4, "filter", "FORWARD", body, reader) is null, "-A FORWARD" + body);
        }
        Assert.True(proven > 500, $"only {proven} rules were taken as reloading exactly");
    }

    [Theory]
    [InlineData("-A INPUT -j IDLETIMER --timeout 5 --label \"a b\"")]
    [InlineData("-A INPUT -m comment --comment \"abc\ndef\" -j ACCEPT")]
    public void Rules_whose_save_line_does_not_reload_are_not_taken_and_fail_the_reload(string line)
    {
        var reader = new RestoreReader(IpFamily.V4, "iptables-restore");
        ParsedCommand cmd = new CommandLineParser(IpFamily.V4, "iptables-restore", restore: true)
            .Parse(["iptables-restore", "-t", "filter", .. reader.Tokenize(line, 1)]);
        Rule rule = cmd.Rules[0];
        Assert.False(SaveFormCheck.ReloadsExactly(rule, "INPUT"));
        Assert.NotNull(SaveFormCheck.Reload(IpFamily.V4, "filter", "INPUT", RuleWriter.SaveBody(rule), reader));
    }
}
