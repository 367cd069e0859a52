using Chainwalk.Extensions;
using Chainwalk.Net;
using Chainwalk.Syntax;

namespace Chainwalk.Rules;

/// <summary>
/// Changes to a ruleset with the kernel's rules and iptables' messages: chains must exist, built-in
/// chains cannot be deleted, a chain in use cannot be removed, no loops, every extension accepted by
/// its table and the hooks that reach it. Callers work on a clone and keep it only when no error is thrown,
/// so a failed command changes nothing.
/// </summary>
public sealed class RulesetEditor(Ruleset ruleset)
{
    public Ruleset Ruleset { get; } = ruleset;

    /// <summary>Skip the whole-table checks after each change; the caller validates at the end.</summary>
    public bool DeferValidation { get; init; }

    private string Tool => Ruleset.Family.Tool();

    public static TableInfo RequireTable(string name, IpFamily family)
    {
        // iptables-nft 1.8.9 (nft_table_find failing in do_commandx): exit 3, printed as is.
        return TableInfo.Find(name) ?? throw new XtablesException(XtablesExit.VersionProblem,
            $"{family.Tool()} v{SaveWriter.Version}: table '{name}' does not exist\nPerhaps iptables or your kernel needs to be upgraded.") { Verbatim = true };
    }

    private XtablesException NoChain() => XtablesException.Other($"{Tool}: No chain/target/match by that name.");

    private Chain RequireChain(Table table, string name) => table.Find(name) ?? throw NoChain();

    /// <summary>Checks that a jump target exists before the rule is added (the parser's "Chain 'X' does not exist").</summary>
    public static void CheckJumpTarget(Table table, Rule rule)
    {
        if (rule.Target is { IsChainJump: true } t && table.Find(t.Name) is null)
        {
            throw XtablesException.Param($"Chain '{t.Name}' does not exist");
        }
    }

    /// <summary>
    /// A jump to a built-in chain: nf_tables refuses to jump to a base chain (EOPNOTSUPP); when the table did not
    /// exist before the command, iptables-nft has not created that base chain yet and the kernel says ENOENT.
    /// </summary>
    private void CheckJumpToBuiltin(Table table, Rule rule, string operation, string chainName, bool tableWasNew)
    {
        if (rule.Target is { IsChainJump: true } t && table.Find(t.Name) is { IsBuiltin: true })
        {
            string problem = tableWasNew ? "No such file or directory" : "Operation not supported";
            throw new XtablesException(XtablesExit.ResourceProblem, $" {operation} failed ({problem}): rule in chain {chainName}");
        }
    }

    /// <summary>Jump checks of a rule being added: in iptables-restore the missing-chain check waits for COMMIT.</summary>
    private void CheckJumps(Table table, Rule rule, string operation, string chainName, bool tableWasNew)
    {
        if (!DeferValidation) CheckJumpTarget(table, rule);
        CheckJumpToBuiltin(table, rule, operation, chainName, tableWasNew);
    }

    /// <summary>The table, created if needed; <paramref name="wasNew"/> tells whether it had to be created.</summary>
    private Table GetOrCreate(string tableName, out bool wasNew)
    {
        TableInfo info = RequireTable(tableName, Ruleset.Family);
        wasNew = Ruleset.Find(info.Name) is null;
        return Ruleset.GetOrCreate(info);
    }

    /// <summary>
    /// The table if it exists. iptables-nft creates a table only when a command adds something to it; the
    /// chains of a table that does not exist yet are unknown to the kernel ("No chain/target/match by that name.").
    /// </summary>
    private Table? FindTable(string tableName) => Ruleset.Find(RequireTable(tableName, Ruleset.Family).Name);

    public void Append(string tableName, string chainName, IEnumerable<Rule> rules)
    {
        Table table = GetOrCreate(tableName, out bool wasNew);
        Chain chain = RequireChain(table, chainName);
        if (DeferValidation && rules is List<Rule> list)
        {
            // Restore: the checks wait for COMMIT, so nothing needs the list of added rules.
            for (int i = 0; i < list.Count; i++)
            {
                Rule r = list[i];
                CheckJumps(table, r, "RULE_APPEND", chainName, wasNew);
                chain.Rules.Add(r);
                chain.Finder?.Appended(r);
            }
            table.Checked = null;
            return;
        }
        var added = new List<Rule>(1);
        foreach (Rule r in rules)
        {
            CheckJumps(table, r, "RULE_APPEND", chainName, wasNew);
            chain.Rules.Add(r);
            chain.Finder?.Appended(r);
            chain.Edits++;
            table.RuleEdits++;
            chain.EditListener?.Inserted(chain, chain.Rules.Count - 1);
            added.Add(r);
        }
        ValidateUnlessDeferred(table, "RULE_APPEND", chainName, chain, added, removedJump: false);
    }

    /// <summary>
    /// <see cref="Append"/> of one rule by a restore (<see cref="DeferValidation"/>: the checks wait for COMMIT) into the
    /// table block being read, which the restore already holds and which exists (so it is not new): what Append does
    /// then, without looking the table up by name for every line.
    /// </summary>
    internal void AppendToBlock(Table table, string chainName, Rule rule)
    {
        Chain chain = RequireChain(table, chainName);
        CheckJumps(table, rule, "RULE_APPEND", chainName, tableWasNew: false);
        chain.Rules.Add(rule);
        chain.Finder?.Appended(rule);
        table.Checked = null;
    }

    public void Insert(string tableName, string chainName, int number, IReadOnlyList<Rule> rules)
    {
        Table table = GetOrCreate(tableName, out bool wasNew);
        Chain chain = RequireChain(table, chainName);
        if (number > chain.Rules.Count + 1) throw XtablesException.Other($"{Tool}: Index of insertion too big.");
        for (int i = 0; i < rules.Count; i++)
        {
            CheckJumps(table, rules[i], "RULE_INSERT", chainName, wasNew);
        }
        // iptables inserts each rule at the same position, so a multi-address rule appears in reverse order.
        foreach (Rule r in rules)
        {
            chain.Rules.Insert(number - 1, r);
            chain.Finder?.Inserted(r);
            chain.Edits++;
            table.RuleEdits++;
            chain.EditListener?.Inserted(chain, number - 1);
        }
        var inChainOrder = new List<Rule>(rules);
        inChainOrder.Reverse();
        ValidateUnlessDeferred(table, "RULE_INSERT", chainName, chain, inChainOrder, removedJump: false);
    }

    public void Replace(string tableName, string chainName, int number, Rule rule)
    {
        Table table = FindTable(tableName) ?? throw NoChain();
        Chain chain = RequireChain(table, chainName);
        CheckJumps(table, rule, "RULE_REPLACE", chainName, tableWasNew: false);
        if (number > chain.Rules.Count) throw XtablesException.Other($"{Tool}: Index of replacement too big.");
        Rule old = chain.Rules[number - 1];
        RuleList list = chain.Rules;
        list[number - 1] = rule;
        chain.Finder?.Removed(old);
        chain.Finder?.Inserted(rule);
        chain.Edits++;
        table.RuleEdits++;
        chain.EditListener?.Replaced(chain, number - 1);
        ValidateUnlessDeferred(table, "RULE_REPLACE", chainName, chain, [rule], removedJump: old.Target is { IsChainJump: true });
    }

    /// <summary>
    /// Finds the first rule equal to <paramref name="rule"/> (same save form), or -1. A long chain gets a
    /// <see cref="RuleFinder"/> the first time (kept up to date by the editor), so only rules with the same addresses
    /// and protocol are formatted and compared.
    /// </summary>
    public static int Find(Chain chain, Rule rule)
    {
        string wanted = RuleWriter.SaveBody(rule);
        if (chain.Rules.Count >= RuleFinder.MinimumRules && chain.Finder is null && chain.LinearFinds++ == 0)
        {
            // The first search of a chain (the only one of a CLI command) compares the key fields before formatting;
            // building the index pays from the second search on.
            for (int i = 0; i < chain.Rules.Count; i++)
            {
                Rule r = chain.Rules[i];
                if (RuleFinder.SameKey(r, rule) && RuleWriter.SaveBody(r) == wanted) return i;
            }
            return -1;
        }
        if (chain.Rules.Count >= RuleFinder.MinimumRules)
        {
            RuleFinder finder = chain.Finder is { } f && f.InStepWith(chain) ? f : (chain.Finder = RuleFinder.Build(chain));
            // A key's rules are not kept in chain order (an insert adds at the end of its list): the first in the
            // chain of those with the wanted save form is the one with the lowest position.
            int first = -1;
            foreach (Rule candidate in finder.Candidates(rule))
            {
                if (RuleWriter.SaveBody(candidate) != wanted) continue;
                int at = RuleFinder.PositionOf(chain, candidate);
                if (at < 0)
                {
                    chain.Finder = null; // out of step after all: the linear search below answers
                    break;
                }
                if (first < 0 || at < first) first = at;
            }
            if (chain.Finder is not null) return first;
        }
        for (int i = 0; i < chain.Rules.Count; i++)
        {
            if (RuleWriter.SaveBody(chain.Rules[i]) == wanted) return i;
        }
        return -1;
    }

    public void Delete(string tableName, string chainName, IEnumerable<Rule> rules)
    {
        Table table = Ruleset.GetOrCreate(RequireTable(tableName, Ruleset.Family));
        Chain chain = RequireChain(table, chainName);
        foreach (Rule r in rules)
        {
            CheckJumpTarget(table, r);
            int i = Find(chain, r);
            if (i < 0) throw XtablesException.Other($"{Tool}: Bad rule (does a matching rule exist in that chain?).");
            RemoveAt(table, chain, i);
        }
    }

    /// <summary>Removes a rule; what the editor remembers about the table stays true unless a jump went.</summary>
    private static void RemoveAt(Table table, Chain chain, int index)
    {
        Rule old = chain.Rules[index];
        chain.Rules.RemoveAt(index);
        chain.Finder?.Removed(old);
        chain.Edits++;
        table.RuleEdits++;
        chain.EditListener?.Deleted(chain, index);
        // Fewer jumps can only narrow which hooks reach a chain; the reach is worked out again when next needed.
        if (old.Target is { IsChainJump: true }) table.Checked = null;
    }

    public void DeleteNumber(string tableName, string chainName, int number)
    {
        Table table = FindTable(tableName) ?? throw NoChain();
        Chain chain = RequireChain(table, chainName);
        if (number > chain.Rules.Count) throw XtablesException.Other($"{Tool}: Index of deletion too big.");
        RemoveAt(table, chain, number - 1);
    }

    public void Check(string tableName, string chainName, IEnumerable<Rule> rules)
    {
        Table table = Ruleset.Find(tableName) ?? new Table(RequireTable(tableName, Ruleset.Family), Ruleset.Family);
        Chain chain = RequireChain(table, chainName);
        foreach (Rule r in rules)
        {
            CheckJumpTarget(table, r);
            if (Find(chain, r) < 0) throw XtablesException.Other($"{Tool}: Bad rule (does a matching rule exist in that chain?).");
        }
    }

    public void Flush(string tableName, string? chainName)
    {
        // -F without a chain does not create the table; -F CHAIN does (iptables-nft 1.8.9).
        Table? existing = FindTable(tableName);
        if (chainName is null && existing is null) return;
        if (existing is null && new Table(RequireTable(tableName, Ruleset.Family), Ruleset.Family).Find(chainName!) is null) throw NoChain();
        Table table = Ruleset.GetOrCreate(RequireTable(tableName, Ruleset.Family));
        if (chainName is null)
        {
            foreach (Chain c in table.Chains) ClearRules(table, c);
            return;
        }
        ClearRules(table, RequireChain(table, chainName));
    }

    /// <summary>Empties a chain (also for iptables-restore's ":CHAIN" of an existing user chain).</summary>
    public static void ClearRules(Table table, Chain chain)
    {
        foreach (Rule r in chain.Rules)
        {
            if (r.Target is { IsChainJump: true })
            {
                table.Checked = null;
                break;
            }
        }
        chain.Rules.Clear();
        chain.Finder = null;
        chain.Edits++;
        table.RuleEdits++;
        chain.EditListener?.Cleared(chain);
    }

    public void Zero(string tableName, string? chainName, int number)
    {
        // -Z never creates the table; a chain of a table that does not exist is unknown, and its rule N is a bad rule.
        Table? table = FindTable(tableName);
        if (table is null)
        {
            if (chainName is null) return;
            if (number > 0) throw XtablesException.Other($"{Tool}: Bad rule (does a matching rule exist in that chain?).");
            throw NoChain();
        }
        IEnumerable<Chain> chains = chainName is null ? table.Chains : [RequireChain(table, chainName)];
        foreach (Chain c in chains)
        {
            if (number > 0)
            {
                // iptables-nft 1.8.9 zeroes nothing and succeeds when the rule number is past the end.
                if (number <= c.Rules.Count) c.Rules[number - 1].Counters = default;
                continue;
            }
            c.Counters = default;
            foreach (Rule r in c.Rules) r.Counters = default;
        }
    }

    public void NewChain(string tableName, string chainName)
    {
        Table table = Ruleset.GetOrCreate(RequireTable(tableName, Ruleset.Family));
        if (table.Find(chainName) is not null) throw XtablesException.Other($"{Tool}: Chain already exists.");
        table.AddUserChain(chainName);
    }

    /// <summary>The kernel's refusal to delete a chain that has rules, is jumped to, or is a base chain (EBUSY).</summary>
    private static XtablesException ChainBusy(string chain) =>
        new(XtablesExit.ResourceProblem, $" CHAIN_DEL failed (Device or resource busy): chain {chain}");

    public void DeleteChain(string tableName, string? chainName)
    {
        Table? table = FindTable(tableName);
        if (table is null)
        {
            // -X does not create the table; a named chain of a table that does not exist is unknown.
            if (chainName is null) return;
            throw NoChain();
        }
        if (chainName is null)
        {
            // -X without a name deletes every user chain; one that still has rules or is jumped to makes the
            // whole transaction fail, as the kernel refuses that chain.
            foreach (Chain c in table.UserChains.ToList())
            {
                if (c.Rules.Count > 0 || table.References(c.Name) > 0) throw ChainBusy(c.Name);
            }
            foreach (Chain c in table.UserChains.ToList()) table.RemoveUserChain(c.Name);
            return;
        }
        Chain? chain = table.Find(chainName);
        if (chain is null) throw NoChain();
        // In iptables-restore the built-in chains of the table being restored are not known to the kernel yet.
        if (chain.IsBuiltin && DeferValidation) throw NoChain();
        if (chain.IsBuiltin || table.References(chainName) > 0 || chain.Rules.Count > 0) throw ChainBusy(chainName);
        table.RemoveUserChain(chainName);
    }

    public void RenameChain(string tableName, string oldName, string newName)
    {
        Table table = Ruleset.GetOrCreate(RequireTable(tableName, Ruleset.Family));
        Chain? chain = table.Find(oldName);
        if (chain is null) throw NoChain();
        if (chain.IsBuiltin) throw XtablesException.Other($"{Tool}: Can't rename built-in chain.");
        if (table.Find(newName) is not null) throw XtablesException.Other($"{Tool}: File exists.");
        table.RenameUserChain(oldName, newName);
        table.Checked = null;
        foreach (Chain c in table.Chains)
        {
            for (int i = 0; i < c.Rules.Count; i++)
            {
                Rule r = c.Rules[i];
                if (r.Target is { IsChainJump: true } t && t.Name == oldName)
                {
                    r.Target = new TargetUse { Name = newName, Goto = t.Goto };
                    r.SaveFormVerified = false;
                }
            }
        }
    }

    public void SetPolicy(string tableName, string chainName, string policy, Counters? counters = null)
    {
        Table table = Ruleset.GetOrCreate(RequireTable(tableName, Ruleset.Family));
        Chain? chain = table.Find(chainName);
        if (chain is null || !chain.IsBuiltin) throw XtablesException.Other($"{Tool}: Bad built-in chain name.");
        if (policy != Verdicts.Accept && policy != Verdicts.Drop) throw XtablesException.Other($"{Tool}: Bad policy name. Run `dmesg' for more information.");
        chain.Policy = policy;
        if (counters is { } c) chain.Counters = c;
    }

    /// <summary>
    /// The kernel's table checks: no loops through jumps, and each extension accepts the table and
    /// the hooks from which its chain is reachable.
    /// </summary>
    /// <summary>
    /// The table checks after rules were added to <paramref name="edited"/> (<paramref name="added"/>, in chain
    /// order). When the table was checked whole before (<see cref="Table.Checked"/>) and the change adds no jump,
    /// removes none and involves no extension whose check looks beyond its rule, no other rule's answer can change
    /// and the hooks reaching each chain stay as they were: only the added rules are checked, against the remembered
    /// hooks of their chain. That gives the same error as the whole check: the whole table was valid before, so the
    /// first refused rule in chain order is the first refused added rule. Otherwise the whole table is checked (and
    /// remembered). Restore defers all of it to COMMIT.
    /// </summary>
    private void ValidateUnlessDeferred(Table table, string operation, string chainName, Chain edited, IReadOnlyList<Rule> added, bool removedJump)
    {
        if (DeferValidation)
        {
            table.Checked = null;
            return;
        }
        try
        {
            if (table.Checked is { SharedObjects: false } state && !removedJump && !NeedsWholeCheck(added))
            {
                HookMask hooks = edited.CheckedReach;
                HookMask baseHooks = BaseHooks(edited);
                IEnumerable<Rule> tableRules = table.Chains.SelectMany(c => c.Rules);
                foreach (Rule r in added)
                {
                    string? problem = CheckRule(table, baseHooks, r, hooks, tableRules);
                    if (problem is not null) throw new XtablesException(XtablesExit.ResourceProblem, $" {operation} failed ({problem}): rule in chain {chainName}");
                }
                return;
            }
            Validate(table, operation, chainName);
        }
        catch (XtablesException)
        {
            table.Checked = null;
            throw;
        }
    }

    /// <summary>Rules whose addition can change more than their own check: jumps (reach, loops, depth) and shared-object extensions.</summary>
    private static bool NeedsWholeCheck(IReadOnlyList<Rule> rules)
    {
        foreach (Rule r in rules)
        {
            if (UsesSharedObjects(r) || r.Target is { IsChainJump: true }) return true;
        }
        return false;
    }

    private static bool UsesSharedObjects(Rule r)
    {
        foreach (MatchUse m in r.Matches)
        {
            if (m.Extension.ChecksSharedObjects) return true;
        }
        return r.Target?.Extension is { ChecksSharedObjects: true };
    }

    /// <summary>Checks the whole table (jump targets, loops, depth, every rule) and remembers what incremental checks need.</summary>
    public static void Validate(Table table, string operation, string chainName)
    {
        table.Checked = null;
        foreach (Chain c in table.Chains)
        {
            // iptables-restore defers the missing-jump-target check to COMMIT.
            foreach (Rule r in c.Rules) CheckJumpTarget(table, r);
        }
        Dictionary<string, HookMask> reach = ComputeReach(table, out bool loop);
        // nf_tables refuses a loop reachable from a base chain with ELOOP ("Too many links" in iptables-nft's table).
        if (loop) throw new XtablesException(XtablesExit.ResourceProblem, $" {operation} failed (Too many links): rule in chain {chainName}");
        if (TooDeep(table).Count > 0) throw new XtablesException(XtablesExit.ResourceProblem, $" {operation} failed (Too many links): rule in chain {chainName}");
        bool shared = false;
        IEnumerable<Rule> tableRules = table.Chains.SelectMany(c => c.Rules);
        foreach (Chain c in table.Chains)
        {
            HookMask hooks = reach.TryGetValue(c.Name, out HookMask h) ? h : HookMask.None;
            HookMask baseHooks = BaseHooks(c);
            // A checked table is mostly kept as it is (a COMMIT): its rule lists hold no spare slots.
            c.Rules.TrimExcess();
            foreach (Rule r in c.Rules)
            {
                string? problem = CheckRule(table, baseHooks, r, hooks, tableRules);
                if (problem is not null)
                {
                    throw new XtablesException(XtablesExit.ResourceProblem, $" {operation} failed ({problem}): rule in chain {chainName}");
                }
                shared |= UsesSharedObjects(r);
            }
        }
        Remember(table, reach, shared);
    }

    /// <summary>Remembers a table that was just checked whole without a problem (iptables-restore's COMMIT).</summary>
    public static void RememberChecked(Table table, TableCheckResult check)
    {
        if (check.Loop || check.AnyTooDeep || check.Problems.Count > 0) return;
        bool shared = false;
        foreach (Chain c in table.Chains)
        {
            foreach (Rule r in c.Rules) shared |= UsesSharedObjects(r);
        }
        Remember(table, check.Reach, shared);
    }

    /// <summary>
    /// Marks <paramref name="table"/> checked whole: each chain keeps the hooks that reach it (<see cref="Chain.CheckedReach"/>,
    /// a byte in the chain rather than a map by name beside the table: 9 bytes per rule of a kube-proxy set).
    /// </summary>
    private static void Remember(Table table, Dictionary<string, HookMask> reach, bool shared)
    {
        foreach (Chain c in table.Chains) c.CheckedReach = reach.TryGetValue(c.Name, out HookMask h) ? h : HookMask.None;
        table.Checked = new TableCheckState(shared);
    }

    /// <summary>Every rule the kernel's checks refuse, with its chain and the errno text, in chain order.</summary>
    public static List<(Chain Chain, Rule Rule, string Problem)> FindRuleProblems(Table table) => CheckTable(table).Problems;

    /// <summary>
    /// The table checks done once: whether a loop is reachable from a built-in chain, whether a jump is too deep,
    /// and every refused rule in chain order (as <see cref="FindRuleProblems"/> lists them).
    /// </summary>
    public sealed class TableCheckResult
    {
        public required bool Loop { get; init; }

        public required bool AnyTooDeep { get; init; }

        public required List<(Chain Chain, Rule Rule, string Problem)> Problems { get; init; }

        /// <summary>For each chain, the hooks whose built-in chain reaches it (as <see cref="ComputeReach"/>).</summary>
        public required Dictionary<string, HookMask> Reach { get; init; }
    }

    /// <summary>
    /// One pass over the table: the results of <see cref="FindRuleProblems"/> and, without a second pass, what
    /// <see cref="Validate"/> would throw (see <see cref="ThrowIfInvalid"/>).
    /// </summary>
    public static TableCheckResult CheckTable(Table table)
    {
        var list = new List<(Chain, Rule, string)>();
        Dictionary<string, HookMask> reach = ComputeReach(table, out bool loop);
        HashSet<Rule> deep = loop ? [] : TooDeep(table);
        IEnumerable<Rule> tableRules = table.Chains.SelectMany(c => c.Rules);
        foreach (Chain c in table.Chains)
        {
            HookMask hooks = reach.TryGetValue(c.Name, out HookMask h) ? h : HookMask.None;
            HookMask baseHooks = BaseHooks(c);
            // A checked table is mostly kept as it is (a COMMIT): its rule lists hold no spare slots.
            c.Rules.TrimExcess();
            foreach (Rule r in c.Rules)
            {
                string? problem = deep.Count > 0 && deep.Contains(r) ? "Too many links" : CheckRule(table, baseHooks, r, hooks, tableRules);
                if (problem is not null) list.Add((c, r, problem));
            }
        }
        table.TrimExcess();
        return new TableCheckResult { Loop = loop, AnyTooDeep = deep.Count > 0, Problems = list, Reach = reach };
    }

    /// <summary>What <see cref="Validate"/> throws for a table whose jump targets all exist, from one <see cref="CheckTable"/> result.</summary>
    public static void ThrowIfInvalid(TableCheckResult check, string operation, string chainName)
    {
        if (check.Loop || check.AnyTooDeep)
            throw new XtablesException(XtablesExit.ResourceProblem, $" {operation} failed (Too many links): rule in chain {chainName}");
        if (check.Problems.Count > 0)
            throw new XtablesException(XtablesExit.ResourceProblem, $" {operation} failed ({check.Problems[0].Problem}): rule in chain {chainName}");
    }

    private static HookMask BaseHooks(Chain chain) => chain.IsBuiltin && HookNames.TryParse(chain.Name, out Hook own) ? own.Mask() : HookMask.None;

    private static string? CheckRule(Table table, HookMask baseHooks, Rule rule, HookMask hooks, IEnumerable<Rule> tableRules)
    {
        // iptables-nft cannot express "not in 0.0.0.0/0": the kernel refuses the rule.
        if ((rule.SourceInverted && rule.Source.MaskIsZero) || (rule.DestinationInverted && rule.Destination.MaskIsZero))
            return InvalidArgument;
        // iptables-nft 1.8.9 turns -j QUEUE into the "QUEUE" xt target, which no kernel module provides (ENOENT).
        if (rule.Target is { Extension: null, Name: Verdicts.Queue }) return "No such file or directory";
        if (rule.Matches.Count == 0 && rule.Target is not { Extension: not null, Data: not null }) return null;
        var ctx = new RuleCheckContext { Family = table.Family, Table = table.Name, Hooks = hooks, Rule = rule, BaseChainHooks = baseHooks, EntryHooks = baseHooks,
            TableRules = tableRules,
        };
        foreach (MatchUse m in rule.Matches)
        {
            string? p = CheckExtension(ctx, m.Extension, m.Data);
            if (p is not null) return p;
        }
        if (rule.Target is { Extension: { } te, Data: { } td }) return CheckExtension(ctx, te, td);
        return null;
    }

    private static string? CheckExtension(RuleCheckContext ctx, XtExtension ext, ExtensionData data)
    {
        // xt_check_match/xt_check_target (net/netfilter/x_tables.c): protocol, table and hooks, all EINVAL.
        if (ext.RequiredProtocol != 0 && (ctx.Rule.Protocol != ext.RequiredProtocol || ctx.Rule.ProtocolInverted)) return InvalidArgument;
        if (ext.Tables is { } tables && !tables.Contains(ctx.Table)) return InvalidArgument;
        if (ctx.Hooks != HookMask.None && (ctx.Hooks & ~ext.Hooks) != 0) return InvalidArgument;
        return ext.CheckEntry(ctx, data);
    }

    /// <summary>
    /// The jumps nf_tables refuses for depth: a base chain is level 0 and each jump or goto one level deeper;
    /// a chain at level 16 (NFT_JUMP_STACK_SIZE) may not exist, so a jump or goto from a chain at level 15 or
    /// deeper fails with EMLINK ("Too many links"; nft_chain_validate in net/netfilter/nf_tables_api.c).
    /// Chains no base chain reaches are not checked. Call only when there is no loop.
    /// </summary>
    public static HashSet<Rule> TooDeep(Table table)
    {
        var level = new Dictionary<string, int>(StringComparer.Ordinal);
        var queue = new Queue<Chain>();
        foreach (Chain b in table.BuiltinChains)
        {
            level[b.Name] = 0;
            queue.Enqueue(b);
        }
        while (queue.Count > 0)
        {
            Chain c = queue.Dequeue();
            int l = level[c.Name];
            if (l > 4096) continue; // no loops here; a guard only
            foreach (Rule r in c.Rules)
            {
                if (r.Target is not { IsChainJump: true } t || table.Find(t.Name) is not { } next) continue;
                if (!level.TryGetValue(next.Name, out int old) || old < l + 1)
                {
                    level[next.Name] = l + 1;
                    queue.Enqueue(next);
                }
            }
        }
        var deep = new HashSet<Rule>();
        foreach (Chain c in table.Chains)
        {
            if (!level.TryGetValue(c.Name, out int l) || l + 1 < Engine.Netfilter.JumpStackSize) continue;
            foreach (Rule r in c.Rules)
            {
                if (r.Target is { IsChainJump: true }) deep.Add(r);
            }
        }
        return deep;
    }

    /// <summary>strerror(EINVAL), what most checkentry refusals come back as.</summary>
    public const string InvalidArgument = "Invalid argument";

    /// <summary>For each chain, the hooks whose built-in chain reaches it; detects jump loops.</summary>
    public static Dictionary<string, HookMask> ComputeReach(Table table, out bool loop)
    {
        var reach = new Dictionary<string, HookMask>(StringComparer.Ordinal);
        loop = false;
        var state = new Dictionary<string, int>(StringComparer.Ordinal); // 1 = on stack, 2 = done
        var edges = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (Chain c in table.Chains)
        {
            var list = new List<string>();
            foreach (Rule r in c.Rules)
            {
                if (r.Target is { IsChainJump: true } t) list.Add(t.Name);
            }
            edges[c.Name] = list;
        }
        bool Visit(string name)
        {
            if (state.TryGetValue(name, out int s))
            {
                return s == 1;
            }
            state[name] = 1;
            foreach (string next in edges.TryGetValue(name, out List<string>? l) ? l : [])
            {
                if (Visit(next)) return true;
            }
            state[name] = 2;
            return false;
        }
        // Only loops reachable from a built-in (base) chain count: nf_tables checks those alone.
        foreach (Chain c in table.BuiltinChains)
        {
            if (Visit(c.Name))
            {
                loop = true;
                return reach;
            }
        }
        foreach (Chain b in table.BuiltinChains)
        {
            HookNames.TryParse(b.Name, out Hook hook);
            var stack = new Stack<string>();
            stack.Push(b.Name);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            while (stack.Count > 0)
            {
                string n = stack.Pop();
                if (!seen.Add(n)) continue;
                reach[n] = (reach.TryGetValue(n, out HookMask m) ? m : HookMask.None) | hook.Mask();
                if (edges.TryGetValue(n, out List<string>? nexts)) foreach (string next in nexts) stack.Push(next);
            }
        }
        return reach;
    }
}

/// <summary>
/// What <see cref="RulesetEditor"/> remembers about a table it checked whole: whether a rule's check depends on other
/// rules or host objects (and, in each chain, <see cref="Chain.CheckedReach"/>: the hooks reaching it). Dropped (null)
/// by any change it cannot follow.
/// </summary>
public sealed record TableCheckState(bool SharedObjects);

/// <summary>
/// An index of a long chain for <c>-D</c>/<c>-C</c> with a rule: the rules by a key of their addresses and
/// protocol (equal save forms have equal keys: both are printed in the save form, injectively), each key's rules
/// in no particular order. Built on first use and kept in step by <see cref="RulesetEditor"/>.
/// </summary>
public sealed class RuleFinder
{
    /// <summary>Shorter chains are searched linearly.</summary>
    public const int MinimumRules = 64;

    /// <summary>Per key: the rule, or a <see cref="List{Rule}"/> of them when several share the key.</summary>
    private readonly Dictionary<int, object> _byKey;
    private int _count;

    private RuleFinder(int capacity) => _byKey = new Dictionary<int, object>(capacity);

    private static int Key(Rule r) => HashCode.Combine(r.Source, r.Destination, r.Protocol, r.SourceInverted, r.DestinationInverted, r.ProtocolInverted);

    /// <summary>Equal key fields (rules with the same save form always have them).</summary>
    public static bool SameKey(Rule a, Rule b) =>
        a.Source.Address == b.Source.Address && a.Destination.Address == b.Destination.Address && a.Protocol == b.Protocol
        && a.Source == b.Source && a.Destination == b.Destination
        && a.SourceInverted == b.SourceInverted && a.DestinationInverted == b.DestinationInverted && a.ProtocolInverted == b.ProtocolInverted;

    public static RuleFinder Build(Chain chain)
    {
        var f = new RuleFinder(chain.Rules.Count);
        foreach (Rule r in chain.Rules) f.Appended(r);
        return f;
    }

    /// <summary>True when it holds as many rules as the chain (a change made around the editor drops it).</summary>
    public bool InStepWith(Chain chain) => _count == chain.Rules.Count;

    public void Appended(Rule r)
    {
        _count++;
        ref object? slot = ref System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrAddDefault(_byKey, Key(r), out bool exists);
        if (!exists) slot = r;
        else if (slot is List<Rule> list) list.Add(r);
        else slot = new List<Rule>(2) { (Rule)slot!, r };
    }

    /// <summary>
    /// A rule put anywhere in the chain: added to its key's rules, which are then no longer in chain order
    /// (<see cref="RulesetEditor.Find"/> takes the lowest position among equal ones, so no rescan of the chain).
    /// </summary>
    public void Inserted(Rule r) => Appended(r);

    public void Removed(Rule r)
    {
        int k = Key(r);
        if (!_byKey.TryGetValue(k, out object? slot)) return;
        if (ReferenceEquals(slot, r))
        {
            _byKey.Remove(k);
            _count--;
        }
        else if (slot is List<Rule> list && list.Remove(r))
        {
            _count--;
            if (list.Count == 1) _byKey[k] = list[0];
        }
    }

    /// <summary>The rules that may have the same save form as <paramref name="r"/> (in no particular order).</summary>
    public IReadOnlyList<Rule> Candidates(Rule r) => _byKey.TryGetValue(Key(r), out object? slot)
        ? slot as List<Rule> ?? [(Rule)slot]
        : [];

    /// <summary>Where <paramref name="r"/> is, searched from the end (deleting costs that much anyway); -1 if absent.</summary>
    public static int PositionOf(Chain chain, Rule r)
    {
        for (int i = chain.Rules.Count - 1; i >= 0; i--)
        {
            if (ReferenceEquals(chain.Rules[i], r)) return i;
        }
        return -1;
    }
}
