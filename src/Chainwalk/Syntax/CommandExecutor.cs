using System.Globalization;
using System.Text;
using Chainwalk.Net;
using Chainwalk.Rules;

namespace Chainwalk.Syntax;

/// <summary>
/// Runs one parsed iptables command against a ruleset (do_commandx of iptables-nft): the change goes
/// through <see cref="RulesetEditor"/>; -L and -S are written to <see cref="Output"/>.
/// </summary>
public sealed class CommandExecutor(Ruleset ruleset, NameDb? names = null)
{
    private readonly NameDb _names = names ?? NameDb.System;

    public Ruleset Ruleset { get; } = ruleset;

    public StringBuilder Output => _output ??= new();

    private StringBuilder? _output;

    /// <summary>True when the command wrote something to <see cref="Output"/>.</summary>
    public bool HasOutput => _output is { Length: > 0 };

    /// <summary>True when the command changed the ruleset (so the state must be written).</summary>
    public bool Changed { get; private set; }

    /// <summary>When set (restore), the table checks run once at COMMIT instead of after each rule.</summary>
    public bool DeferValidation { get; init; }

    /// <summary>When set (<c>chainwalk --json iptables -L|-S</c>), listings are JSON Lines chain and rule objects (<see cref="RuleJson"/>).</summary>
    public bool Json { get; init; }

    private RulesetEditor? _editor;

    /// <summary>
    /// A restore's <c>-A</c> of one rule into <paramref name="table"/>, the table block being read (in
    /// <see cref="Ruleset"/>, under the name <paramref name="cmd"/> has): <see cref="Execute"/> with
    /// <see cref="DeferValidation"/>, the table not looked up again.
    /// </summary>
    internal void AppendToBlock(Table table, ParsedCommand cmd)
    {
        RulesetEditor editor = _editor ??= new RulesetEditor(Ruleset) { DeferValidation = DeferValidation };
        editor.AppendToBlock(table, cmd.Chain ?? string.Empty, cmd.Rules[0]);
        Changed = true;
    }

    public void Execute(ParsedCommand cmd)
    {
        // The editor keeps nothing between commands but its settings: a restore's executor uses one for every line.
        RulesetEditor editor = _editor ??= new RulesetEditor(Ruleset) { DeferValidation = DeferValidation };
        string table = cmd.Table;
        TableInfo info = RulesetEditor.RequireTable(table, Ruleset.Family);
        string chain = cmd.Chain ?? string.Empty;
        switch (cmd.Command)
        {
            case CommandKind.Append:
                editor.Append(table, chain, cmd.Rules);
                Changed = true;
                return;
            case CommandKind.Insert:
                editor.Insert(table, chain, cmd.RuleNumber, cmd.Rules);
                Changed = true;
                return;
            case CommandKind.Replace:
                editor.Replace(table, chain, cmd.RuleNumber, cmd.Rules[0]);
                Changed = true;
                return;
            case CommandKind.Delete:
                editor.Delete(table, chain, cmd.Rules);
                Changed = true;
                return;
            case CommandKind.DeleteNum:
                editor.DeleteNumber(table, chain, cmd.RuleNumber);
                Changed = true;
                return;
            case CommandKind.Check:
                editor.Check(table, chain, cmd.Rules);
                return;
            case CommandKind.Flush:
                editor.Flush(table, cmd.Chain);
                Changed = true;
                return;
            case CommandKind.Zero:
            case CommandKind.ZeroNum:
                editor.Zero(table, cmd.Chain, cmd.RuleNumber);
                ReportZeroing(cmd);
                Changed = true;
                return;
            case CommandKind.NewChain:
                editor.NewChain(table, chain);
                Changed = true;
                return;
            case CommandKind.DeleteChain:
                editor.DeleteChain(table, cmd.Chain);
                Changed = true;
                return;
            case CommandKind.RenameChain:
                editor.RenameChain(table, chain, cmd.NewName!);
                Changed = true;
                return;
            case CommandKind.SetPolicy:
                // iptables-nft 1.8.9 ignores -c with -P: the policy counters stay as they are.
                editor.SetPolicy(table, chain, cmd.Policy!, null);
                Changed = true;
                return;
        }

        bool list = (cmd.Command & CommandKind.List) != 0;
        bool listRules = (cmd.Command & CommandKind.ListRules) != 0;
        bool zero = (cmd.Command & (CommandKind.Zero | CommandKind.ZeroNum)) != 0;
        Table view = Ruleset.Find(table) ?? new Table(info, Ruleset.Family);
        // -L/-S with -Z and a rule number (iptables -L -Z INPUT 1) only zeroes that rule: 1.8.9 prints nothing.
        bool zeroOneRule = zero && cmd.RuleNumber > 0;
        if (Json && (list || listRules) && !zeroOneRule) ListJson(view, cmd, allChainsFirst: !list && cmd.Chain is null);
        else if (list && !zeroOneRule) List(view, cmd);
        else if (listRules && !zeroOneRule) ListRules(view, cmd);
        if (zero)
        {
            if (list && Ruleset.Find(table) is null)
            {
                // -L -Z on a table that does not exist: the listing showed the built-in chains iptables-nft
                // fakes; zeroing them fails in the kernel (exit 4) after the "Zeroing chain" lines.
                List<Chain> shown = cmd.Chain is null ? [.. view.Chains] : [RequireChain(view, cmd.Chain)];
                if (cmd.Verbose > 0 && cmd.RuleNumber == 0)
                {
                    foreach (Chain c in shown) Output.Append("Zeroing chain `").Append(c.Name).Append("'\n");
                }
                throw new XtablesException(XtablesExit.ResourceProblem, $" CHAIN_ZERO failed (No such file or directory): chain {shown[0].Name}");
            }
            editor.Zero(table, cmd.Chain, cmd.RuleNumber);
            ReportZeroing(cmd);
            Changed = true;
        }
    }

    /// <summary>-Z with -v: "Zeroing chain `NAME'" for each chain zeroed (not for a single rule).</summary>
    private void ReportZeroing(ParsedCommand cmd)
    {
        if (cmd.Verbose == 0 || cmd.RuleNumber > 0) return;
        if (Ruleset.Find(cmd.Table) is not { } t) return;
        IEnumerable<Chain> chains = cmd.Chain is null ? t.Chains : t.Find(cmd.Chain) is { } c ? [c] : [];
        foreach (Chain ch in chains) Output.Append("Zeroing chain `").Append(ch.Name).Append("'\n");
    }

    /// <summary>-L/-S of a chain that does not exist: iptables-nft 1.8.9 reports it as an incompatible chain (exit 1).</summary>
    private Chain RequireChain(Table view, string? name)
    {
        return view.Find(name!) ?? throw XtablesException.Other(
            $"{Ruleset.Family.Tool()} v{SaveWriter.Version}: chain `{name}' in table `{view.Name}' is incompatible, use 'nft' tool.");
    }

    private void List(Table view, ParsedCommand cmd)
    {
        ListFormat format = ListWriter.FormatFor(cmd.Verbose > 0, cmd.Numeric, cmd.Exact, cmd.LineNumbers);
        var writer = new ListWriter(Output, format, _names);
        IEnumerable<Chain> chains = cmd.Chain is null ? view.Chains : [RequireChain(view, cmd.Chain)];
        bool first = true;
        foreach (Chain c in chains)
        {
            if (cmd.RuleNumber > 0)
            {
                if (cmd.RuleNumber <= c.Rules.Count) writer.Rule(c.Rules[cmd.RuleNumber - 1], cmd.RuleNumber);
                continue;
            }
            if (!first) Output.Append('\n');
            first = false;
            writer.Header(c, view.References(c.Name));
            int n = 1;
            foreach (Rule r in c.Rules) writer.Rule(r, n++);
        }
    }

    /// <summary>
    /// -L/-S as JSON Lines: the same chains and rules in the same order as the text (-S of a whole table: every
    /// chain, then every rule; otherwise each chain followed by its rules; with a rule number, that rule only).
    /// </summary>
    private void ListJson(Table view, ParsedCommand cmd, bool allChainsFirst)
    {
        List<Chain> chains = cmd.Chain is null ? [.. view.Chains] : [RequireChain(view, cmd.Chain)];
        using var json = new JsonLines(new StringWriter(Output, CultureInfo.InvariantCulture));
        var scratch = new StringBuilder(128);
        if (cmd.RuleNumber > 0)
        {
            foreach (Chain c in chains)
            {
                if (cmd.RuleNumber <= c.Rules.Count) RuleJson.WriteRule(json, view, c, c.Rules[cmd.RuleNumber - 1], cmd.RuleNumber, _names, scratch);
            }
            return;
        }
        Dictionary<string, int> refs = RuleJson.References(view);
        if (allChainsFirst)
        {
            foreach (Chain c in chains) RuleJson.WriteChain(json, view, c, refs);
        }
        foreach (Chain c in chains)
        {
            if (!allChainsFirst) RuleJson.WriteChain(json, view, c, refs);
            for (int i = 0; i < c.Rules.Count; i++) RuleJson.WriteRule(json, view, c, c.Rules[i], i + 1, _names, scratch);
        }
    }

    private void ListRules(Table view, ParsedCommand cmd)
    {
        bool counters = cmd.Verbose > 0;
        if (cmd.Chain is not null)
        {
            Chain c = RequireChain(view, cmd.Chain);
            if (cmd.RuleNumber > 0)
            {
                if (cmd.RuleNumber <= c.Rules.Count) AppendRuleSpec(c, c.Rules[cmd.RuleNumber - 1], counters);
                return;
            }
            ChainSpec(c, counters);
            foreach (Rule r in c.Rules) AppendRuleSpec(c, r, counters);
            return;
        }
        foreach (Chain c in view.Chains) ChainSpec(c, counters);
        foreach (Chain c in view.Chains)
        {
            foreach (Rule r in c.Rules) AppendRuleSpec(c, r, counters);
        }
    }

    private void ChainSpec(Chain c, bool counters)
    {
        if (c.IsBuiltin)
        {
            Output.Append("-P ").Append(c.Name).Append(' ').Append(c.Policy);
            if (counters)
            {
                Output.Append(" -c ").Append(c.Counters.Packets.ToString(CultureInfo.InvariantCulture))
                      .Append(' ').Append(c.Counters.Bytes.ToString(CultureInfo.InvariantCulture));
            }
            Output.Append('\n');
        }
        else
        {
            Output.Append("-N ").Append(c.Name).Append('\n');
        }
    }

    private void AppendRuleSpec(Chain c, Rule r, bool counters)
    {
        Output.Append("-A ").Append(c.Name);
        RuleWriter.AppendSaveBody(Output, r, _names, counters);
        Output.Append('\n');
    }
}
