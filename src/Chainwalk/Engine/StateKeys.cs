using System.Globalization;
using System.Runtime.CompilerServices;
using Chainwalk.Rules;
using Chainwalk.Syntax;

namespace Chainwalk.Engine;

/// <summary>
/// Names for a rule's private state that stay the same from one command to the next: table, chain, the
/// rule's save text and which occurrence of that text it is (so inserting rules elsewhere keeps the state,
/// as nf_tables keeps the state of rules it does not replace), and the match's position in the rule.
/// </summary>
internal static class StateKeys
{
    private static readonly ConditionalWeakTable<Rule, string> Keys = new();

    public static string Rule(string table, Chain chain, int index)
    {
        Rule rule = chain.Rules[index];
        if (Keys.TryGetValue(rule, out string? key)) return key;
        string body = RuleWriter.SaveBody(rule);
        int occurrence = 0;
        for (int i = 0; i < index; i++)
        {
            if (RuleWriter.SaveBody(chain.Rules[i]) == body) occurrence++;
        }
        key = $"{table} {chain.Name} #{occurrence.ToString(CultureInfo.InvariantCulture)}{body}";
        Keys.AddOrUpdate(rule, key);
        return key;
    }

    public static string Match(string table, Chain chain, int index, int match) =>
        Rule(table, chain, index) + " /m" + match.ToString(CultureInfo.InvariantCulture);

    public static string Target(string table, Chain chain, int index) => Rule(table, chain, index) + " /t";
}

/// <summary>The parts of a rule in save syntax, for explanations ("-p tcp", "-m tcp --dport 22").</summary>
public static class RuleParts
{
    public static string Source(Rule r) => (r.SourceInverted ? "! " : "") + "-s " + r.Source.SaveText;

    public static string Destination(Rule r) => (r.DestinationInverted ? "! " : "") + "-d " + r.Destination.SaveText;

    public static string In(Rule r) => (r.InInverted ? "! " : "") + "-i " + r.InInterface;

    public static string Out(Rule r) => (r.OutInverted ? "! " : "") + "-o " + r.OutInterface;

    public static string Protocol(Rule r) => (r.ProtocolInverted ? "! " : "") + "-p " + (Protocols.Name(r.Protocol, Net.NameDb.System) ?? r.Protocol.ToString(CultureInfo.InvariantCulture));

    public static string Match(MatchUse m, Net.IpFamily family)
    {
        var sb = new System.Text.StringBuilder("-m ").Append(m.Extension.Name);
        m.Extension.Save(sb, m.Data, family);
        return sb.ToString();
    }
}
